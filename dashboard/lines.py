"""Line charts of downsampled series: the x-axis, EMA smoothing, the min–max band, NaN/Inf marks.

Input is what `Source.series` / `Source.system_series` return (one row per bucket, per series).
A one-step spike survives downsampling either way: with the band, the line follows each bucket's
last finite value over a band from its min to its max; without it, the line itself passes through
each bucket's min and max before its last value. Buckets that held NaN or ±Inf get a red mark on
top, and a series of a single point is drawn as a point. The x-axis is the step, wall time, time
since the run started, or another logged metric (`metric_x`); runs can be grouped into one mean
line per group over the group's min–max band (`group_frame`).

Example:
    frame, x_title = prepare(points, series=points["run_id"].map(names), x_mode="step", smoothing=0.6)
    st.altair_chart(line_chart(frame, "train/loss", domain=list(names.values()), x_title=x_title))
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

X_MODES = {"step": "Step", "wall": "Wall time", "relative": "Relative time"}
NONFINITE_COLOR = "#d62728"
# Vega's tableau10 and category20: named here so a legend drawn outside the charts matches them.
TABLEAU10 = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6",
             "#9d755d", "#bab0ac")
CATEGORY20 = ("#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
              "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
              "#bcbd22", "#dbdb8d", "#17becf", "#9edae5")
# Axis labels: 0.001 and 0.25 as they are, large values in SI form (1.2M), never "250m" for 0.25.
_LABEL = "abs(datum.value) >= 10000 ? format(datum.value, '.3~s') : format(datum.value, '.4~g')"
# Relative time reads best in the largest unit the run reaches at least twice.
_UNITS = ((3600.0, "h"), (60.0, "min"), (1.0, "s"))


def colors(domain: Sequence[str]) -> list[str]:
    """The colour of each name of `domain`, in order (what `line_chart` and a page legend use)."""
    palette = TABLEAU10 if len(domain) <= 10 else CATEGORY20
    return [palette[i % len(palette)] for i in range(len(domain))]


def prepare(points: pd.DataFrame, series: pd.Series, x_mode: str = "step", starts: pd.Series | None = None,
            smoothing: float = 0.0, log_y: bool = False, x_values: np.ndarray | None = None,
            x_title: str = "") -> tuple[pd.DataFrame, str]:
    """The frame `line_chart` draws, and the x-axis title.

    `series` names each row's line (run, or run and device); `starts` gives each row's time zero
    for relative time (the run's start); `smoothing` in [0, 1) is the EMA weight (0 = off, as in
    W&B: the debiased exponential moving average over the drawn points). With `log_y`, values
    that are not positive are left out (a log axis cannot place them). With x_mode "metric",
    `x_values` (from `metric_x`) is each row's x and `x_title` the metric's name; the line still
    follows the steps.
    """
    frame = pd.DataFrame({"series": series.to_numpy(), "min": _floats(points["min"]),
                          "max": _floats(points["max"]), "last": _floats(points["last"]),
                          "points": points["points"].to_numpy() if "points" in points else 1})
    for column in ("nan", "posinf", "neginf"):
        frame[column] = points[column].to_numpy() if column in points else 0
    frame["nonfinite"] = frame["nan"] + frame["posinf"] + frame["neginf"]
    frame["nonfinite_text"] = [_nonfinite_text(*row) for row in zip(frame["nan"], frame["posinf"], frame["neginf"])]
    if x_mode == "metric":
        frame["x"], title = x_values, x_title
    else:
        frame["x"], title = _x(points, x_mode, starts)
    frame["step"] = points["step"].to_numpy() if "step" in points else np.arange(len(frame))
    if log_y:
        for column in ("min", "max", "last"):
            frame[column] = frame[column].where(frame[column] > 0)
    if x_mode == "metric":
        frame = frame[np.isfinite(frame["x"].astype("float64"))]
    frame = frame.sort_values(["series", "step" if x_mode == "metric" else "x"], kind="stable")
    if smoothing > 0:
        frame["smooth"] = frame.groupby("series", sort=False)["last"].transform(lambda s: ema(s, smoothing))
    else:
        frame["smooth"] = frame["last"]
    frame = frame.reset_index(drop=True)
    frame["seq"] = np.arange(len(frame))
    return frame, title


def metric_x(points: pd.DataFrame, x_points: pd.DataFrame) -> np.ndarray:
    """Each bucket's x when another metric is the x-axis: that metric's value in the same run at the
    bucket's last step, or the last one logged before it (NaN before its first)."""
    out = np.full(len(points), np.nan)
    if x_points.empty or points.empty:
        return out
    rows = points[["run_id", "step"]].assign(row=np.arange(len(points)))
    for run_id, mine in rows.groupby("run_id", sort=False):
        xs = x_points.loc[x_points["run_id"] == run_id, ["step", "last"]].dropna()
        if xs.empty:
            continue
        merged = pd.merge_asof(mine.sort_values("step").astype({"step": "int64"}),
                               xs.sort_values("step").astype({"step": "int64"}), on="step", direction="backward")
        out[merged["row"].to_numpy()] = merged["last"].to_numpy(dtype="float64", na_value=np.nan)
    return out


def group_frame(frame: pd.DataFrame, group_of: dict[str, str], smoothing: float = 0.0,
                bins: int = 400) -> pd.DataFrame:
    """One line per group: the mean of its runs' values over the group's min–max band.

    The x-axis is cut into `bins` common bins per group; in each, every run gives its last value
    (the mean is over runs) and its min and max (the band is the lowest min to the highest max, so
    one run's one-step spike stays in it); NaN/Inf counts add up.
    """
    if frame.empty:
        return frame
    frame = frame.assign(group=frame["series"].map(group_of).fillna(frame["series"]))
    temporal = np.issubdtype(frame["x"].dtype, np.datetime64)
    x = frame["x"].astype("int64") if temporal else frame["x"].astype("float64")
    parts = []
    for group, rows in frame.assign(xnum=x).groupby("group", sort=False):
        low, high = float(rows["xnum"].min()), float(rows["xnum"].max())
        width = (high - low) / bins if high > low else 1.0
        rows = rows.assign(bin=np.minimum(((rows["xnum"] - low) // width).astype("int64"), bins - 1))
        per_run = rows.sort_values("seq").groupby(["bin", "series"], sort=False).agg(
            xnum=("xnum", "max"), last=("last", "last"), min=("min", "min"), max=("max", "max"), nan=("nan", "sum"),
            posinf=("posinf", "sum"), neginf=("neginf", "sum"), points=("points", "sum"), step=("step", "max"))
        binned = per_run.groupby(level="bin").agg(
            xnum=("xnum", "max"), last=("last", "mean"), min=("min", "min"), max=("max", "max"), nan=("nan", "sum"),
            posinf=("posinf", "sum"), neginf=("neginf", "sum"), points=("points", "sum"), step=("step", "max"),
            runs=("last", "count")).reset_index(drop=True).sort_values("xnum")
        binned["series"] = group
        parts.append(binned)
    out = pd.concat(parts, ignore_index=True)
    out["x"] = pd.to_datetime(out["xnum"].astype("int64")) if temporal else out["xnum"]
    out["nonfinite"] = out["nan"] + out["posinf"] + out["neginf"]
    out["nonfinite_text"] = [_nonfinite_text(*row) for row in zip(out["nan"], out["posinf"], out["neginf"])]
    out["smooth"] = (out.groupby("series", sort=False)["last"].transform(lambda v: ema(v, smoothing))
                     if smoothing > 0 else out["last"])
    out["seq"] = np.arange(len(out))
    return out.drop(columns=["xnum"])


def extremes(frame: pd.DataFrame) -> pd.DataFrame:
    """The path of a line through every bucket's min and max, then its last value: drawn without the
    band, a one-step spike stays on the line however many steps a bucket holds."""
    if frame.empty:
        return frame.assign(y=frame["last"])
    spread = frame["min"].notna() & frame["max"].notna() & (frame["min"] < frame["max"])
    base = frame.assign(y=frame["last"], part=2)
    lows = frame[spread].assign(y=frame.loc[spread, "min"], part=0)
    highs = frame[spread].assign(y=frame.loc[spread, "max"], part=1)
    path = pd.concat([lows, highs, base]).sort_values(["seq", "part"], kind="stable")
    return path.assign(seq=np.arange(len(path))).reset_index(drop=True)


def ema(values: pd.Series, weight: float) -> pd.Series:
    """Debiased EMA (`adjust=True`): the first points are not pulled towards zero; gaps stay gaps."""
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must be in [0, 1), not {weight}")
    smoothed = values.ewm(alpha=1 - weight, adjust=True, ignore_na=True).mean()
    return smoothed.where(values.notna())


def line_chart(frame: pd.DataFrame, title: str, domain: Sequence[str], x_title: str = "step",
               x_mode: str = "step", log_y: bool = False, band: bool = True, height: int = 240,
               smoothed: bool = False, legend: bool = True, y_scale: alt.Scale | None = None,
               color_of: dict[str, str] | None = None) -> alt.LayerChart:
    """One chart: a line per series over its min–max band (or through the buckets' extremes without
    it), a point for a series of one point, red marks where NaN/Inf were logged. `legend=False` when
    the page draws one legend for all its charts (`colors` gives the same colours); `color_of` keeps
    each series' colour when `domain` is only the part of a page's series this chart has."""
    palette = [color_of[d] for d in domain] if color_of else colors(domain)
    color = alt.Color("series:N", scale=alt.Scale(domain=list(domain), range=palette),
                      legend=alt.Legend(orient="bottom", title=None, symbolType="stroke", symbolStrokeWidth=3,
                                        symbolOpacity=1, labelLimit=260, columns=min(len(domain), 3) or 1)
                      if legend else None)
    x_type = "T" if x_mode == "wall" else "Q"
    x_axis = alt.Axis(labelOverlap=True, grid=False, labelExpr=_LABEL) if x_type == "Q" else \
        alt.Axis(labelOverlap=True, grid=False)
    x = alt.X(f"x:{x_type}", title=x_title, axis=x_axis,
              scale=alt.Scale(zero=False) if x_type == "Q" else alt.Undefined)
    if y_scale is None:
        y_scale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    y_axis = alt.Axis(tickCount=5, labelExpr=_LABEL) if log_y else alt.Axis(labelExpr=_LABEL)
    tooltip = [alt.Tooltip("series:N", title="run"), alt.Tooltip(f"x:{x_type}", title=x_title),
               alt.Tooltip("last:Q", title="value", format=".5~g"),
               alt.Tooltip("min:Q", format=".5~g"), alt.Tooltip("max:Q", format=".5~g"),
               alt.Tooltip("points:Q", title="points in bucket")]
    order = alt.Order("seq:Q")
    base = alt.Chart(frame).encode(x=x, color=color)
    zoom = alt.selection_interval(bind="scales", encodings=["x"])
    layers = []
    if band:
        layers.append(base.mark_area(opacity=0.18, interpolate="step-after").encode(
            y=alt.Y("min:Q", scale=y_scale), y2="max:Q", order=order))
    raw = alt.Chart(extremes(frame)).encode(x=x, color=color, order=order)
    if smoothed:
        layers.append(raw.mark_line(opacity=0.3, strokeWidth=1).encode(y=alt.Y("y:Q", scale=y_scale)))
        main = base.mark_line(strokeWidth=1.8).encode(y=alt.Y("smooth:Q", title=None, scale=y_scale, axis=y_axis),
                                                      order=order)
    elif band:
        main = base.mark_line(strokeWidth=1.8).encode(y=alt.Y("smooth:Q", title=None, scale=y_scale, axis=y_axis),
                                                      order=order)
    else:
        main = raw.mark_line(strokeWidth=1.6).encode(y=alt.Y("y:Q", title=None, scale=y_scale, axis=y_axis))
    layers.append(main.encode(tooltip=tooltip).add_params(zoom))
    drawn = frame.groupby("series")["last"].count() if not frame.empty else pd.Series(dtype=int)
    singles = frame[frame["series"].isin(drawn[drawn <= 1].index) & frame["last"].notna()]
    if not singles.empty:  # a line needs two points: one is drawn as a point
        layers.append(alt.Chart(singles).mark_point(filled=True, size=80, opacity=1).encode(
            x=x, y=alt.Y("smooth:Q", scale=y_scale), color=color, tooltip=tooltip))
    marks = frame[frame["nonfinite"] > 0]
    if not marks.empty:
        flagged = alt.Chart(marks).encode(
            x=x, tooltip=[alt.Tooltip("series:N", title="run"), alt.Tooltip(f"x:{x_type}", title=x_title),
                          alt.Tooltip("nonfinite_text:N", title="non-finite")])
        layers.append(flagged.mark_rule(color=NONFINITE_COLOR, strokeDash=[3, 3], opacity=0.5))
        layers.append(flagged.mark_point(shape="triangle-down", filled=True, size=70, color=NONFINITE_COLOR,
                                         opacity=1).encode(y=alt.value(6)))
    # Vega-Lite fits the legend into the height: give each row of legend entries room of its own.
    legend_rows = -(-len(domain) // 3) if legend else 0
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
