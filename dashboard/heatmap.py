"""Histograms over steps as one heatmap per parameter (x: step, y: value, colour: how many values).

Each logged histogram has bucket edges of its own (the gradient's range at that step), so they are
first re-binned onto one value grid per parameter: the counts' cumulative distribution, taken as
uniform inside each bucket, is read off at the grid's edges. When a few steps span a far wider
range than the rest (an exploding gradient), the grid covers the usual range and values beyond it
land in its first or last row, so one bad step does not squash every other step into one row.

Example:
    cells = rebin(histograms[histograms["key"] == "gradients/fc1.weight"], bins=48)
    st.altair_chart(heatmap_chart(cells, "fc1.weight"))
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

NONFINITE_COLOR = "#d62728"
# The grid spans the usual range (10th..90th percentile of the steps' ranges) when the full range is
# this many times wider.
_OUTLIER_FACTOR = 10.0


def rebin(rows: pd.DataFrame, bins: int = 48) -> pd.DataFrame:
    """Cells of the heatmap: step, step_end, low, high, count (0 cells left out), plus nonfinite per step.

    `rows` are one key's histograms (columns step, edges, counts, nonfinite) in step order.
    """
    rows = rows[[len(e) >= 2 and len(e) == len(c) + 1 for e, c in zip(rows["edges"], rows["counts"])]]
    if rows.empty:
        return pd.DataFrame(columns=["step", "step_end", "low", "high", "count", "nonfinite"])
    lows = np.array([e[0] for e in rows["edges"]], dtype=float)
    highs = np.array([e[-1] for e in rows["edges"]], dtype=float)
    low, high = _grid_range(lows, highs)
    grid = np.linspace(low, high, bins + 1)
    steps = rows["step"].to_numpy()
    ends = _step_ends(steps)
    cells = []
    for step, end, edges, counts, nonfinite in zip(steps, ends, rows["edges"], rows["counts"], rows["nonfinite"]):
        edges = np.asarray(edges, dtype=float)
        counts = np.asarray(counts, dtype=float)
        cumulative = np.concatenate([[0.0], np.cumsum(counts)])
        at_grid = np.interp(grid, edges, cumulative)  # 0 below the first edge, the total above the last
        per_bin = np.diff(at_grid)
        per_bin[0] += at_grid[0]  # values below the grid
        per_bin[-1] += cumulative[-1] - at_grid[-1]  # and above it
        for i in np.nonzero(per_bin > 0)[0]:
            cells.append((step, end, grid[i], grid[i + 1], per_bin[i], int(nonfinite)))
    return pd.DataFrame(cells, columns=["step", "step_end", "low", "high", "count", "nonfinite"])


def heatmap_chart(cells: pd.DataFrame, title: str, height: int = 220) -> alt.LayerChart:
    """Rectangles coloured by log count; red marks above steps whose histogram held NaN/Inf."""
    base = alt.Chart(cells).encode(
        x=alt.X("step:Q", title="step", axis=alt.Axis(grid=False)), x2="step_end:Q",
        y=alt.Y("low:Q", title="value", axis=alt.Axis(grid=False, format=".2~g")), y2="high:Q")
    rects = base.mark_rect().encode(
        color=alt.Color("count:Q", scale=alt.Scale(type="symlog", scheme="blues"), legend=None),
        tooltip=[alt.Tooltip("step:Q"), alt.Tooltip("low:Q", title="from", format=".4~g"),
                 alt.Tooltip("high:Q", title="to", format=".4~g"), alt.Tooltip("count:Q", format=",.0f")])
    layers = [rects]
    flagged = cells[cells["nonfinite"] > 0].drop_duplicates("step")
    if not flagged.empty:
        layers.append(alt.Chart(flagged).mark_point(shape="triangle-down", filled=True, size=60,
                                                    color=NONFINITE_COLOR, opacity=1).encode(
            x="step:Q", y=alt.value(5), tooltip=[alt.Tooltip("step:Q"), alt.Tooltip("nonfinite:Q", title="NaN/Inf")]))
    return alt.layer(*layers).properties(title=alt.Title(title, anchor="start", fontSize=13), height=height)


def _grid_range(lows: np.ndarray, highs: np.ndarray) -> tuple[float, float]:
    low, high = float(lows.min()), float(highs.max())
    usual_low = float(np.percentile(lows, 10, method="higher"))
    usual_high = float(np.percentile(highs, 90, method="lower"))
    usual_span = usual_high - usual_low
    if usual_span > 0 and (high - low) > _OUTLIER_FACTOR * usual_span:
        low, high = usual_low, usual_high
    if high <= low:  # every value the same: a thin band around it
        pad = abs(low) * 0.01 or 1.0
        low, high = low - pad, high + pad
    return low, high


def _step_ends(steps: np.ndarray) -> np.ndarray:
    """Where each step's column ends: at the next logged step (the last one as wide as the one before)."""
    if len(steps) == 1:
        return steps + 1
    gaps = np.diff(steps)
    return steps + np.concatenate([gaps, gaps[-1:]])
