"""Documents for `log()`: `Html` (a page shown in a sandboxed frame) and `Plotly` (a Plotly figure).

Example:
    emitter.log({"report": emitter.Html("<h1>epoch 3</h1><p>accuracy 0.91</p>"),
                 "curve": plotly_figure})  # a plotly figure is logged as Plotly, as W&B does
"""

from __future__ import annotations

import json
import os
from typing import Any

from pulse.media_schema import PLOTLY_MIME, plotly_problem

from .media import Encoded, plain, read_file

# What inject=True puts in the page's head: W&B links its stylesheet there; a self-hosted page links
# nothing outside, so a few lines of style stand in for it, and links open outside the frame.
HEAD = ('<meta charset="utf-8"><base target="_blank">'
        '<style>body{margin:0;font-family:system-ui,sans-serif;line-height:1.4}</style>')


class Html(Encoded):
    """An HTML page: literal HTML, a file object, or the path of a .html file (read as UTF-8).

    `inject=True` (W&B's default) adds a charset, `<base target="_blank">` and a little style to the
    head; `inject=False` stores the page exactly as given.

    Example:
        emitter.log({"attention": emitter.Html(rendered_html, inject=False)})
    """

    kind = "html"

    def __init__(self, data: Any, inject: bool = True, data_is_not_path: bool = False) -> None:
        if isinstance(data, os.PathLike) or (isinstance(data, str) and not data_is_not_path
                                             and data.lower().endswith((".html", ".htm")) and os.path.isfile(data)):
            path = os.fspath(data)
            text = read_file(path).decode("utf-8")
        elif isinstance(data, str):
            text = data
        elif hasattr(data, "read"):
            if hasattr(data, "seek"):
                data.seek(0)
            text = data.read()
            text = text.decode("utf-8") if isinstance(text, bytes) else text
        else:
            raise ValueError(f"Html takes a string of HTML, a .html path or a file object, not {type(data).__name__}")
        self.html = inject_head(text) if inject else text
        self._set(self.html.encode("utf-8"), "text/html", "an HTML page")

    def __repr__(self) -> str:
        return f"<Html {len(self._data):,} bytes>"


def inject_head(html: str) -> str:
    """`html` with HEAD at the start of its <head> (made if missing), as W&B's inject_head does."""
    lower = html.lower()
    head = lower.find("<head>")
    if head >= 0:
        at = head + len("<head>")
        return html[:at] + HEAD + html[at:]
    start = lower.find("<html>")
    if start >= 0:
        at = start + len("<html>")
        return html[:at] + "<head>" + HEAD + "</head>" + html[at:]
    return HEAD + html


class Plotly(Encoded):
    """A Plotly figure (a `plotly.graph_objects.Figure` or its dict), stored as Plotly's JSON, which
    the dashboard draws as it was made. `log()` wraps a plotly figure in one by itself.

    Example:
        emitter.log({"pr": emitter.Plotly(px.line(df, x="recall", y="precision"))})
    """

    kind = "plotly"

    def __init__(self, figure: Any) -> None:
        if hasattr(figure, "to_json"):
            text = figure.to_json()  # plotly's own encoder: numpy arrays, dates, NaN
        elif isinstance(figure, dict):
            text = json.dumps(plain(figure))
        else:
            raise ValueError(f"Plotly takes a plotly figure or its dict, not {type(figure).__name__}")
        if problem := plotly_problem(json.loads(text)):
            raise ValueError(problem)
        self._set(text.encode("utf-8"), PLOTLY_MIME, "a Plotly figure")

    def __repr__(self) -> str:
        return f"<Plotly {len(self._data):,} bytes>"
