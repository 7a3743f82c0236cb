"""Line charts of downsampled series: the x-axis, EMA smoothing, the min–max band, NaN/Inf marks.

Input is what `Source.series` / `Source.system_series` return (one row per bucket, per series):
the line follows each bucket's last finite value over a band from its min to its max, so a
one-step spike survives downsampling; buckets that held NaN or ±Inf get a red mark on top.

Example:
    frame = prepare(points, series=points["run_id"].map(names), x_mode="step", smoothing=0.6)
    st.altair_chart(line_chart(frame, "train/loss", domain=list(names.values())))
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

X_MODES = {"step": "Step", "wall": "Wall time", "relative": "Relative time"}
NONFINITE_COLOR = "#d62728"
# Axis labels: 0.001 and 0.25 as they are, large values in SI form (1.2M), never "250m" for 0.25.
_LABEL = "abs(datum.value) >= 10000 ? format(datum.value, '.3~s') : format(datum.value, '.4~g')"
# Relative time reads best in the largest unit the run reaches at least twice.
_UNITS = ((3600.0, "h"), (60.0, "min"), (1.0, "s"))


def prepare(points: pd.DataFrame, series: pd.Series, x_mode: str = "step", starts: pd.Series | None = None,
            smoothing: float = 0.0, log_y: bool = False) -> tuple[pd.DataFrame, str]:
    """The frame `line_chart` draws, and the x-axis title.

    `series` names each row's line (run, or run and device); `starts` gives each row's time zero
    for relative time (the run's start); `smoothing` in [0, 1) is the EMA weight (0 = off, as in
    W&B: the debiased exponential moving average over the drawn points). With `log_y`, values
    that are not positive are left out (a log axis cannot place them).
    """
    frame = pd.DataFrame({"series": series.to_numpy(), "min": _floats(points["min"]),
                          "max": _floats(points["max"]), "last": _floats(points["last"]),
                          "points": points["points"].to_numpy() if "points" in points else 1})
    for column in ("nan", "posinf", "neginf"):
        frame[column] = points[column].to_numpy() if column in points else 0
    frame["nonfinite"] = frame["nan"] + frame["posinf"] + frame["neginf"]
    frame["nonfinite_text"] = [_nonfinite_text(*row) for row in zip(frame["nan"], frame["posinf"], frame["neginf"])]
    frame["x"], title = _x(points, x_mode, starts)
    if log_y:
        for column in ("min", "max", "last"):
            frame[column] = frame[column].where(frame[column] > 0)
    frame = frame.sort_values(["series", "x"], kind="stable")
    if smoothing > 0:
        frame["smooth"] = frame.groupby("series", sort=False)["last"].transform(lambda s: ema(s, smoothing))
    else:
        frame["smooth"] = frame["last"]
    return frame.reset_index(drop=True), title


def ema(values: pd.Series, weight: float) -> pd.Series:
    """Debiased EMA (`adjust=True`): the first points are not pulled towards zero; gaps stay gaps."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must be in [0, 1), not {weight}")
    smoothed = values.ewm(alpha=1 - weight, adjust=True, ignore_na=True).mean()
    return smoothed.where(values.notna())


def line_chart(frame: pd.DataFrame, title: str, domain: Sequence[str], x_title: str = "step",
               x_mode: str = "step", log_y: bool = False, band: bool = True, height: int = 240,
               smoothed: bool = False) -> alt.LayerChart:
    """One chart: a line per series over its min–max band, red marks where NaN/Inf were logged."""
    palette = "tableau10" if len(domain) <= 10 else "category20"
    color = alt.Color("series:N", scale=alt.Scale(domain=list(domain), scheme=palette),
                      legend=alt.Legend(orient="bottom", title=None, symbolType="stroke", symbolStrokeWidth=3,
                                        symbolOpacity=1,
                                        labelLimit=260, columns=min(len(domain), 3) or 1))
    x_type = "T" if x_mode == "wall" else "Q"
    x = alt.X(f"x:{x_type}", title=x_title, axis=alt.Axis(labelOverlap=True, grid=False))
    y_scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    y_axis = alt.Axis(tickCount=5, labelExpr=_LABEL) if log_y else alt.Axis(labelExpr=_LABEL)
    tooltip = [alt.Tooltip("series:N", title="run"), alt.Tooltip(f"x:{x_type}", title=x_title),
               alt.Tooltip("last:Q", title="value", format=".5~g"),
               alt.Tooltip("min:Q", format=".5~g"), alt.Tooltip("max:Q", format=".5~g"),
               alt.Tooltip("points:Q", title="points in bucket")]
    base = alt.Chart(frame).encode(x=x, color=color)
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    layers = []
    if band:
        layers.append(base.mark_area(opacity=0.18, interpolate="step-after").encode(
            y=alt.Y("min:Q", scale=y_scale), y2="max:Q"))
    if smoothed:
        layers.append(base.mark_line(opacity=0.3, strokeWidth=1).encode(y=alt.Y("last:Q", scale=y_scale)))
    layers.append(base.mark_line(strokeWidth=1.8).encode(
        y=alt.Y("smooth:Q", title=None, scale=y_scale, axis=y_axis), tooltip=tooltip).add_params(zoom))
    marks = frame[frame["nonfinite"] > 0]
    if not marks.empty:
        flagged = alt.Chart(marks).encode(
            x=x, tooltip=[alt.Tooltip("series:N", title="run"), alt.Tooltip(f"x:{x_type}", title=x_title),
                          alt.Tooltip("nonfinite_text:N", title="non-finite")])
        layers.append(flagged.mark_rule(color=NONFINITE_COLOR, strokeDash=[3, 3], opacity=0.5))
        layers.append(flagged.mark_point(shape="triangle-down", filled=True, size=70, color=NONFINITE_COLOR,
                                         opacity=1).encode(y=alt.value(6)))
    # Vega-Lite fits the legend into the height: give each row of legend entries room of its own.
    legend_rows = -(-len(domain) // 3)
    return alt.layer(*layers).properties(title=alt.Title(title, anchor="start", fontSize=13),
                                         height=height + 18 * legend_rows)


def nonfinite_summary(frame: pd.DataFrame) -> str:
    """'beta-run: 2 NaN, 1 +Inf' for every series with non-finite points; '' when none."""
    flagged = frame[frame["nonfinite"] > 0]
    totals = flagged.groupby("series", sort=False)[["nan", "posinf", "neginf"]].sum()
    return "; ".join(f"{series}: {_nonfinite_text(*row)}" for series, row in zip(totals.index, totals.to_numpy()))


def _nonfinite_text(nan: int, posinf: int, neginf: int) -> str:
    parts = [f"{n} {kind}" for n, kind in ((nan, "NaN"), (posinf, "+Inf"), (neginf, "-Inf")) if n]
    return ", ".join(parts)


def _floats(column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()
    return np.where(np.isfinite(values), values, np.nan)


def _x(points: pd.DataFrame, x_mode: str, starts: pd.Series | None) -> tuple[pd.Series, str]:
    if x_mode == "step":
        return points["step"].to_numpy(), "step"
    ts = pd.to_datetime(points["ts"], utc=True).dt.tz_localize(None)
    if x_mode == "wall":
        return ts.to_numpy(), "wall time (UTC)"
    if x_mode != "relative":
        raise ValueError(f"x_mode must be one of {list(X_MODES)}, not {x_mode!r}")
    zero = (pd.to_datetime(starts, utc=True).dt.tz_localize(None) if starts is not None
            else pd.Series(ts.min(), index=ts.index))
    seconds = (ts.to_numpy() - zero.to_numpy()) / np.timedelta64(1, "s")
    span = float(np.nanmax(seconds)) if len(seconds) else 0.0
    scale, unit = next(((s, u) for s, u in _UNITS if span >= 2 * s), (1.0, "s"))
    return seconds / scale, f"time since start ({unit})"
