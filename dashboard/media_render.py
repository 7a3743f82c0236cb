"""Drawing a logged medium of any kind (pulse/media_schema.py) on a dashboard page.

`render_media(project, key, item, unreadable)` draws one row of `media` (the Media page's items):
images inline; audio and video in the browser's players (a GIF video as an animated image); HTML in
a sandboxed frame; point clouds as an interactive 3D scatter; tables as sortable tables with their
media cells; `plot.*` charts from their spec; Plotly figures as logged. The bytes come from the blob
store through `dashboard.blobs` (sha256-checked) and documents are checked with the shared schema
before they are drawn; what cannot be drawn says why.

Logged HTML is the logging user's, not the dashboard's: it is shown in an `<iframe sandbox>` with
scripts allowed but without `allow-same-origin`, so its scripts run in an opaque origin and can
reach neither the dashboard's page, cookies nor storage, nor navigate it.

Example:
    for item in read("media_at", project, run_ids, key, step).to_pandas().itertuples():
        render_media(project, key, item, unreadable)
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.artifacts import read_cached
from dashboard.blobs import BlobUnavailable, read_blob
from dashboard.media_figures import FigureError, plot_figure, plotly_figure, point_cloud_figure
from dashboard.state import md
from pulse.media_schema import CELL_KINDS, POINTS_MIME, cell_key, is_media_ref, media_problem

MAX_TABLE_ROWS = 5_000  # rows a table shows; the rest are counted
MAX_INLINE_IMAGE_BYTES = 8 << 20  # image cells of one table sent to the browser inline
HTML_HEIGHT = 420
# Scripts run (logged pages are often interactive plots), popups open (the emitter's
# <base target="_blank">) but stay sandboxed; never allow-same-origin, allow-top-navigation.
HTML_SANDBOX = "allow-scripts allow-popups"


@dataclass(frozen=True)
class Medium:
    """One logged medium and where it was logged (a `media` row)."""

    project: str
    run_id: str
    key: str
    step: int
    kind: str
    uri: str
    sha256: str
    mime: str
    width: int = 0
    height: int = 0
    caption: str = ""

    @property
    def widget_key(self) -> str:
        return f"medium:{self.run_id}:{self.key}:{self.step}:{self.sha256[:16]}"


def render_media(project: str, key: str, item: Any, unreadable: list[str]) -> None:
    """Draw `item` (a row of `media`, as the Media page reads them: kind, uri, sha256, mime, width,
    height, caption, run_id, step), logged under `key` in `project`. Bytes that cannot be read are
    named in `unreadable` and the item is shown as its metadata."""
    medium = Medium(project, str(getattr(item, "run_id", "")), key, int(getattr(item, "step", 0)), item.kind,
                    item.uri, item.sha256, item.mime, int(item.width or 0), int(item.height or 0), item.caption or "")
    draw(medium, unreadable)


def draw(medium: Medium, unreadable: list[str]) -> None:
    """Draw one medium: read and check its bytes, then its kind's renderer."""
    renderer = RENDERERS.get(medium.kind)
    if renderer is None:
        _metadata(medium)
        return
    try:
        data = _blob(medium.uri, medium.sha256)
    except BlobUnavailable as exc:
        unreadable.append(str(exc))
        _metadata(medium)
        return
    if problem := media_problem(medium.kind, medium.mime, data):
        st.warning(f"{medium.kind} {md(medium.sha256[:12])}… cannot be drawn: {md(problem)}")
        return
    try:
        renderer(medium, data)
    except FigureError as exc:
        st.warning(f"{medium.kind} {md(medium.sha256[:12])}… cannot be drawn: {md(str(exc))}")


@st.cache_data(ttl=600, max_entries=256, show_spinner=False)
def _blob(uri: str, sha256: str) -> bytes:
    # Content-addressed and checked against its sha256, so one copy serves every session that was
    # allowed to read the row naming it.
    return read_blob(uri, sha256)


def _caption(medium: Medium) -> None:
    if medium.caption:
        st.caption(md(medium.caption))


def _metadata(medium: Medium) -> None:
    size = f" · {medium.width}×{medium.height}" if medium.width else ""
    st.caption(f"{medium.kind} ({md(medium.mime)}){size} · {md(medium.caption)}")


# -- one function per kind -------------------------------------------------------------------------------


def _image(medium: Medium, data: bytes) -> None:
    st.image(data, caption=medium.caption or None, width="stretch")


def _audio(medium: Medium, data: bytes) -> None:
    st.audio(data, format=medium.mime)
    _caption(medium)


def _video(medium: Medium, data: bytes) -> None:
    if medium.mime == "image/gif":  # an animated image, which every browser plays without a player
        st.image(data, caption=medium.caption or None, width="stretch")
        return
    st.video(data, format=medium.mime)
    _caption(medium)


def _html(medium: Medium, data: bytes) -> None:
    frame = sandboxed_frame(data.decode("utf-8"))
    if hasattr(st, "iframe"):
        st.iframe(frame, height=HTML_HEIGHT + 10, alt=f"logged HTML {medium.key}")
    else:  # Streamlit before st.iframe
        import streamlit.components.v1 as components

        components.html(frame, height=HTML_HEIGHT + 10)
    _caption(medium)


def sandboxed_frame(document: str, height: int = HTML_HEIGHT) -> str:
    """A page holding `document` in a sandboxed iframe (srcdoc, no allow-same-origin)."""
    return (f'<!doctype html><html><body style="margin:0"><iframe sandbox="{HTML_SANDBOX}" '
            f'referrerpolicy="no-referrer" title="logged HTML" srcdoc="{html.escape(document, quote=True)}" '
            f'style="box-sizing:border-box;width:100%;height:{int(height)}px;border:1px solid #ddd;'
            'border-radius:4px;background:#fff">'
            "</iframe></body></html>")


def _object3d(medium: Medium, data: bytes) -> None:
    if medium.mime != POINTS_MIME:  # a mesh or scene file: offered as the file it is
        st.caption(f"3D model ({md(medium.mime)}) · {len(data):,} bytes · {md(medium.caption)}")
        st.download_button("Download model", data, file_name=f"{medium.sha256[:16]}.{medium.mime.split('/')[-1]}",
                           mime=medium.mime, key=f"download:{medium.widget_key}", on_click="ignore")
        return
    figure, note = point_cloud_figure(json.loads(data))
    st.plotly_chart(figure, width="stretch", key=f"cloud:{medium.widget_key}")
    if note:
        st.caption(note)
    _caption(medium)


def _plot(medium: Medium, data: bytes) -> None:
    st.plotly_chart(plot_figure(json.loads(data)), width="stretch", key=f"plot:{medium.widget_key}")


def _plotly(medium: Medium, data: bytes) -> None:
    st.plotly_chart(plotly_figure(json.loads(data)), width="stretch", key=f"plotly:{medium.widget_key}")


def _table(medium: Medium, data: bytes) -> None:
    doc = json.loads(data)
    rows = doc["data"][:MAX_TABLE_ROWS]
    refs = {cell["sha256"]: cell for row in rows for cell in row if is_media_ref(cell)}
    cells = {}
    if refs:
        found = read_cached("media_cells", medium.project, medium.run_id, cell_key(medium.key), tuple(sorted(refs)))
        cells = {row["sha"]: row["uri"] for row in found.to_pylist()}
    frame, config = table_frame(doc["columns"], doc["column_types"], rows, cells)
    players = [i for i, kind in enumerate(doc["column_types"]) if kind in CELL_KINDS and kind != "image"]
    selection = st.dataframe(frame, hide_index=True, width="stretch", column_config=config,
                             key=f"table:{medium.widget_key}", on_select="rerun" if players else "ignore",
                             selection_mode="single-row")
    total = len(doc["data"])
    note = f"{total:,} rows" if total <= len(rows) else f"the first {len(rows):,} of {total:,} rows"
    st.caption(f"{note} · click a column's header to sort" + (" · select a row to play its media" if players else ""))
    chosen = selection.selection.rows if players and selection else []
    for r in chosen[:1]:
        for i in players:
            ref = rows[r][i]
            if is_media_ref(ref) and ref["sha256"] in cells:
                st.markdown(f"**{md(doc['columns'][i])}** · row {r}")
                draw(Medium(medium.project, medium.run_id, cell_key(medium.key), medium.step, ref["_media"],
                            cells[ref["sha256"]], ref["sha256"], ref["mime"], caption=ref.get("caption", "")), [])


def table_frame(columns: list[str], types: list[str], rows: list[list], uris: dict[str, str]
                ) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A table document's rows as a DataFrame and its column config: image cells become inline images
    (data URIs, while the table's images stay under MAX_INLINE_IMAGE_BYTES), other media cells a label,
    JSON cells their JSON text."""
    budget = [MAX_INLINE_IMAGE_BYTES]
    data: dict[str, list] = {}
    config: dict[str, Any] = {}
    for i, (name, kind) in enumerate(zip(columns, types)):
        values = [row[i] for row in rows]
        if kind == "image":
            data[name] = pd.Series([_image_uri(cell, uris, budget) for cell in values], dtype="object")
            config[name] = st.column_config.ImageColumn(name)
        elif kind == "number" and all(v is None or type(v) in (int, float) for v in values):
            data[name] = pd.Series(values, dtype="float64" if any(type(v) is float for v in values) else None)
        elif kind == "bool" and all(v is None or type(v) is bool for v in values):
            data[name] = pd.Series(values, dtype="boolean")
        else:
            data[name] = pd.Series([_text(cell) for cell in values], dtype="object")
    return pd.DataFrame(data, columns=columns), config


def _image_uri(cell: Any, uris: dict[str, str], budget: list[int]) -> str | None:
    if not is_media_ref(cell) or cell["sha256"] not in uris:
        return None
    try:
        data = _blob(uris[cell["sha256"]], cell["sha256"])
    except BlobUnavailable:
        return None
    if len(data) > budget[0]:
        return None
    budget[0] -= len(data)
    return f"data:{cell['mime']};base64,{base64.b64encode(data).decode('ascii')}"


def _text(cell: Any) -> str | None:
    if cell is None:
        return None
    if is_media_ref(cell):
        return f"{cell['_media']}: {cell['caption']}" if cell.get("caption") else cell["_media"]
    if isinstance(cell, str):
        return cell
    return json.dumps(cell, ensure_ascii=False)


# kind -> how one medium of it is drawn (every kind of pulse/media_schema.py KINDS).
RENDERERS: dict[str, Callable[[Medium, bytes], None]] = {
    "image": _image, "audio": _audio, "video": _video, "html": _html, "object3d": _object3d,
    "table": _table, "plot": _plot, "plotly": _plotly,
}
