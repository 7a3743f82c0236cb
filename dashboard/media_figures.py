"""Plotly figures of logged media: `plot.*` charts drawn from their spec, point clouds as a 3D scatter,
and logged Plotly figures. Pure functions of the decoded documents (pulse/media_schema.py), so they
are tested without a browser; `dashboard.media_render` puts them on the page.

Plotly because one library covers both the 2D charts and the interactive 3D scatter (Vega-Lite,
Streamlit's other charting library, has no 3D).

Example:
    figure = plot_figure(json.loads(blob))          # a plot document: {"spec": ..., "table": ...}
    figure = point_cloud_figure(json.loads(blob))   # [[x, y, z, r, g, b], ...]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pulse.media_schema import plot_problem, plotly_problem, points_problem

MAX_POINTS = 50_000  # a browser's WebGL scatter stays interactive up to about this many
HEIGHT = 380


class FigureError(ValueError):
    """A document that cannot be drawn; the message says why."""


# -- plot.* charts -------------------------------------------------------------------------------------


def plot_figure(doc: Any) -> go.Figure:
    """The chart a plot document's spec describes, over its table."""
    if problem := plot_problem(doc):
        raise FigureError(problem)
    import plotly.express as px

    spec, table = doc["spec"], doc["table"]
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    chart, x, y, color = spec["chart"], spec.get("x"), spec.get("y"), spec.get("color")
    if chart == "line":
        figure = px.line(frame, x=x, y=y, color=color, markers=len(frame) <= 60)
    elif chart == "scatter":
        figure = px.scatter(frame, x=x, y=y, color=color)
    elif chart == "bar":
        figure = px.bar(frame, x=x, y=y, color=color)
    elif chart == "histogram":
        figure = px.histogram(frame, x=x, color=color, barmode="overlay")
    else:  # heatmap: `value` at (x, y), e.g. a confusion matrix's counts at (Predicted, Actual)
        figure = _heatmap(frame, x, y, spec["value"])
    preset = spec.get("preset", "")
    if preset == "roc_curve":
        figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance",
                                    line={"dash": "dash", "color": "#999999"}))
    if preset in ("roc_curve", "pr_curve"):
        figure.update_xaxes(range=[-0.02, 1.02])
        figure.update_yaxes(range=[-0.02, 1.02])
    y_title = spec.get("y_label") or (y if chart != "histogram" else "count")
    figure.update_layout(title=spec.get("title") or None, xaxis_title=spec.get("x_label") or x,
                         yaxis_title=y_title, height=HEIGHT, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                         legend={"orientation": "h", "y": -0.2})
    return figure


def _heatmap(frame: pd.DataFrame, x: str, y: str, value: str) -> go.Figure:
    import plotly.express as px

    # Categories keep the order the table lists them in (a confusion matrix's class order).
    xs = [str(v) for v in dict.fromkeys(frame[x])]
    ys = [str(v) for v in dict.fromkeys(frame[y])]
    cells = frame.assign(**{x: frame[x].astype(str), y: frame[y].astype(str)})
    matrix = cells.pivot_table(index=y, columns=x, values=value, aggfunc="sum").reindex(index=ys, columns=xs)
    figure = px.imshow(matrix, text_auto=True, color_continuous_scale="Blues", aspect="auto",
                       labels={"x": x, "y": y, "color": value})
    figure.update_xaxes(type="category", side="bottom")
    figure.update_yaxes(type="category")
    return figure


# -- point clouds --------------------------------------------------------------------------------------


def point_cloud_figure(doc: Any, max_points: int = MAX_POINTS) -> tuple[go.Figure, str]:
    """A 3D scatter of a point cloud (pulse/media_schema.py: N x 3, N x 4 with a category, N x 6 with
    r, g, b 0..255, or a lidar/beta scene) and a note on what was left out ('' when nothing)."""
    if problem := points_problem(doc):
        raise FigureError(problem)
    notes = []
    points = doc.get("points", []) if isinstance(doc, dict) else doc
    if isinstance(doc, dict) and (doc.get("boxes") or doc.get("vectors")):
        notes.append(f"{len(doc.get('boxes') or [])} boxes and {len(doc.get('vectors') or [])} vectors not drawn")
    widths = {len(p) for p in points}
    if len(widths) > 1:  # rows of different widths: positions only
        points = [p[:3] for p in points]
        notes.append("points of mixed widths: drawn without colours")
    array = np.asarray(points, dtype=np.float64).reshape(len(points), -1) if points else np.zeros((0, 3))
    total = len(array)
    if total > max_points:
        keep = np.sort(np.random.default_rng(0).choice(total, max_points, replace=False))
        array = array[keep]
        notes.append(f"{max_points:,} of {total:,} points drawn (a fixed random sample)")
    marker: dict[str, Any] = {"size": 2 if len(array) > 2000 else 3, "opacity": 0.9}
    if array.shape[1] == 6:
        rgb = np.clip(np.rint(array[:, 3:6]), 0, 255).astype(int)
        marker["color"] = [f"rgb({r},{g},{b})" for r, g, b in rgb]
    elif array.shape[1] == 4:
        import plotly.colors

        palette = plotly.colors.qualitative.Alphabet
        marker["color"] = [palette[int(c) % len(palette)] for c in array[:, 3]]
    else:
        marker |= {"color": array[:, 2], "colorscale": "Viridis"}
    hover = "x %{x:.3g}<br>y %{y:.3g}<br>z %{z:.3g}" + (
        "<br>category %{customdata:.0f}" if array.shape[1] == 4 else "") + "<extra></extra>"
    figure = go.Figure(go.Scatter3d(x=array[:, 0], y=array[:, 1], z=array[:, 2], mode="markers", marker=marker,
                                    customdata=array[:, 3] if array.shape[1] == 4 else None, hovertemplate=hover))
    figure.update_layout(height=HEIGHT + 60, margin={"l": 0, "r": 0, "t": 10, "b": 0},
                         scene={"aspectmode": "data"})
    return figure, "; ".join(notes)


# -- Plotly figures logged as they are -----------------------------------------------------------------


def plotly_figure(doc: Any) -> go.Figure:
    """A figure logged as Plotly's JSON (`fig.to_json()`); properties this Plotly does not know are
    dropped rather than refused (the figure may come from a newer Plotly)."""
    if problem := plotly_problem(doc):
        raise FigureError(problem)
    try:
        return go.Figure(doc, skip_invalid=True)
    except (ValueError, TypeError) as exc:
        raise FigureError(f"not a Plotly figure: {exc}") from None
