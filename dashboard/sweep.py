"""A sweep's trials as a table of parameters and objective, and the charts of the Sweeps page.

The sweep's config (the W&B YAML, as the `sweeps` table keeps it) names the parameters and the
metric; a sweep without a `sweeps` row (runs that only carry a `sweep_id`) falls back to the config
entries that vary between its runs and lets the user pick the metric. A trial's objective is its
summary's value for the metric: the value itself, or for a `define_metric` summary the part the
goal prefers (`min` when minimising, `max` when maximising, else `best`, else `last`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

# A trial the sweep stopped (hyperband, a canceled sweep) ends its run `killed`; the page calls that
# "stopped early" everywhere, tables, charts and counts alike.
STOPPED = "stopped early"
STATE_COLORS = {"finished": "#4e79a7", "running": "#59a14f", STOPPED: "#f28e2b", "failed": "#e15759",
                "crashed": "#b07aa1"}
LOG_SPAN = 100.0  # positive values spanning this factor or more are drawn on a log axis


def parse_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"opt": {"beta": 0.9}} -> {"opt.beta": 0.9} (W&B's nested sweep parameters)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def sweep_parameters(config: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """The sweep's parameters by (dotted) name, each with its spec; nested `parameters` flattened."""
    found: dict[str, dict[str, Any]] = {}
    for name, spec in (config.get("parameters") or {}).items():
        if isinstance(spec, dict) and isinstance(spec.get("parameters"), dict):
            found.update(sweep_parameters(spec, f"{prefix}{name}."))
        elif isinstance(spec, dict):
            found[f"{prefix}{name}"] = spec
    return found


def varying(configs: list[dict[str, Any]]) -> list[str]:
    """Config entries (flattened) holding scalars that differ between runs: a sweep's parameters
    when its own config is not known."""
    values: dict[str, set] = {}
    for config in configs:
        for key, value in flatten(config).items():
            if isinstance(value, (int, float, str, bool)) or value is None:
                values.setdefault(key, set()).add(json.dumps(value))
    return sorted(k for k, v in values.items() if len(v) > 1)


def metric_names(summaries: list[dict[str, Any]]) -> list[str]:
    """Summary entries with a number (or a define_metric summary) in any run, most common first."""
    counts: dict[str, int] = {}
    for summary in summaries:
        for key, value in summary.items():
            if not key.startswith("_") and objective_value(value, "") is not None:
                counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))


def objective_value(value: Any, goal: str) -> float | None:
    if isinstance(value, dict):
        preferred = {"minimize": "min", "maximize": "max"}.get(goal, "best")
        for part in (preferred, "best", "last", "min", "max"):
            if part in value:
                return objective_value(value[part], goal)
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def trials(runs: pd.DataFrame, params: list[str], metric: str, goal: str) -> pd.DataFrame:
    """One row per trial: run_id, name, state, created_at, objective, trial (1, 2, ...), a column per parameter."""
    configs = [flatten(parse_json(text)) for text in runs["config"]]
    summaries = [parse_json(text) for text in runs["summary"]]
    table = pd.DataFrame({
        "run_id": runs["run_id"].to_numpy(),
        "name": runs["name"].where(runs["name"] != "", runs["run_id"]).to_numpy(),
        "state": runs["state"].replace({"killed": STOPPED}).to_numpy(),
        "created_at": pd.to_datetime(runs["created_at"], utc=True).dt.tz_localize(None).to_numpy(),
        "objective": [objective_value(s.get(metric), goal) for s in summaries],
    })
    table["trial"] = np.arange(1, len(table) + 1)
    for param in params:
        table[param] = _column([c.get(param) for c in configs])
    return table


def planned_trials(config: dict) -> int | None:
    """run_cap, or the size of a grid; None when unbounded or unknown."""
    if isinstance(config.get("run_cap"), int) and config["run_cap"] > 0:
        return config["run_cap"]
    if config.get("method") != "grid":
        return None
    size = 1
    for spec in sweep_parameters(config).values():
        if "values" in spec and isinstance(spec["values"], list):
            size *= max(1, len(spec["values"]))
        elif "value" not in spec:
            return None
    return size


def best_so_far(table: pd.DataFrame, goal: str) -> pd.Series:
    values = table["objective"].astype(float)
    return values.cummax() if goal == "maximize" else values.cummin()


def is_log(values: pd.Series, spec: dict[str, Any] | None = None) -> bool:
    """Log axis: the sweep says log (`log_uniform`, `q_log_uniform_values`, ...) or the values span
    two orders of magnitude."""
    if spec and "log" in str(spec.get("distribution", "")):
        return True
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(numbers) and (numbers > 0).all() and numbers.max() / numbers.min() >= LOG_SPAN)


# -- charts ---------------------------------------------------------------------------------------------


def parallel_coordinates(table: pd.DataFrame, params: list[str], log_params: set[str], metric: str,
                         goal: str) -> alt.LayerChart:
    """An axis per parameter and one for the objective; a line per trial, coloured by objective."""
    axes = [*params, metric]
    long_rows, ticks = [], []
    for axis in axes:
        column = table["objective"] if axis == metric else table[axis]
        norm, labels = _normalise(column, axis in log_params)
        for trial, objective, n, raw in zip(table["trial"], table["objective"], norm, column):
            long_rows.append({"trial": trial, "axis": axis, "y": n, "objective": objective, "value": _text(raw)})
        ticks.extend({"axis": axis, "y": y, "label": label} for y, label in labels)
    frame = pd.DataFrame(long_rows)
    order = alt.Sort(axes)
    x = alt.X("axis:N", sort=order, title=None, axis=alt.Axis(labelAngle=0, labelFontWeight="bold", orient="top",
                                                               labelLimit=160, domain=False, ticks=False))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[-0.04, 1.04]))
    color = alt.Color("objective:Q", title=metric, scale=robust_scale(table["objective"], goal))
    lines = alt.Chart(frame).mark_line(opacity=0.65, strokeWidth=1.6).encode(
        x=x, y=y, color=color, detail="trial:N",
        tooltip=[alt.Tooltip("trial:N"), alt.Tooltip("axis:N", title="axis"), alt.Tooltip("value:N"),
                 alt.Tooltip("objective:Q", format=".5~g")])
    rules = alt.Chart(pd.DataFrame({"axis": axes})).mark_rule(color="#9a9a9a").encode(x=alt.X("axis:N", sort=order))
    labels = alt.Chart(pd.DataFrame(ticks)).mark_text(align="left", dx=4, fontSize=10, color="#555").encode(
        x=alt.X("axis:N", sort=order), y=y, text="label:N")
    return alt.layer(rules, lines, labels).properties(height=340)


def robust_scale(values: pd.Series, goal: str) -> alt.Scale:
    """A colour scale over the 5th to 95th percentile of `values` (clamped beyond): two outliers no
    longer squeeze every other trial into one colour."""
    finite = pd.to_numeric(values, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()
    scale = {"scheme": "viridis", "reverse": goal == "minimize"}
    if len(finite) >= 5:
        low, high = float(finite.quantile(0.05)), float(finite.quantile(0.95))
        if high > low:
            return alt.Scale(domain=[low, high], clamp=True, **scale)
    return alt.Scale(**scale)


def scatter(table: pd.DataFrame, param: str, log_x: bool, metric: str) -> alt.Chart:
    """Objective against one parameter, a point per trial, coloured by the trial's state."""
    rows = table[table["objective"].notna()]
    numeric = pd.api.types.is_numeric_dtype(rows[param]) and not pd.api.types.is_bool_dtype(rows[param])
    field = _field(param)
    x = (alt.X(field=field, type="quantitative", title=param,
               scale=alt.Scale(type="log" if log_x else "linear", zero=False))
         if numeric else alt.X(field=field, type="nominal", title=param, axis=alt.Axis(labelAngle=0)))
    return alt.Chart(rows).mark_circle(size=55, opacity=0.8).encode(
        x=x, y=alt.Y("objective:Q", title=metric, scale=alt.Scale(zero=False)),
        color=_state_color(legend=False),
        tooltip=["name:N", "state:N", alt.Tooltip(field=field, type="quantitative" if numeric else "nominal",
                                                  title=param),
                 alt.Tooltip("objective:Q", format=".5~g")],
    ).properties(height=240, title=alt.Title(param, anchor="start", fontSize=13))


def importance_chart(table: pd.DataFrame) -> alt.HConcatChart:
    """Bars: the forest's importance (0..1) and the rank correlation (-1..1) of every parameter."""
    order = alt.Sort(list(table["parameter"]))
    y = alt.Y("parameter:N", sort=order, title=None, axis=alt.Axis(labelLimit=200))
    height = max(80, 28 * len(table))
    forest = alt.Chart(table).mark_bar(color="#4e79a7").encode(
        x=alt.X("importance:Q", title="importance (random forest)", scale=alt.Scale(domain=[0, 1])), y=y,
        tooltip=["parameter:N", alt.Tooltip("importance:Q", format=".3f")]).properties(height=height, width=260)
    correlation = alt.Chart(table).mark_bar().encode(
        x=alt.X("correlation:Q", title="rank correlation (Spearman)", scale=alt.Scale(domain=[-1, 1])),
        y=alt.Y("parameter:N", sort=order, axis=None),
        color=alt.condition("datum.correlation > 0", alt.value("#e15759"), alt.value("#59a14f")),
        tooltip=["parameter:N", alt.Tooltip("correlation:Q", format=".3f")]).properties(height=height, width=260)
    return alt.hconcat(forest, correlation, spacing=24)


def objective_over_time(table: pd.DataFrame, metric: str, goal: str) -> alt.LayerChart:
    """Every trial's objective by start time, and the best so far as a step line."""
    rows = table[table["objective"].notna()].copy()
    rows["best"] = best_so_far(rows, goal)
    x = alt.X("created_at:T", title="trial started (UTC)")
    points = alt.Chart(rows).mark_circle(size=55, opacity=0.8).encode(
        x=x, y=alt.Y("objective:Q", title=metric, scale=alt.Scale(zero=False)), color=_state_color(),
        tooltip=["trial:Q", "name:N", "state:N", alt.Tooltip("objective:Q", format=".5~g")])
    best = alt.Chart(rows).mark_line(interpolate="step-after", color="#333", strokeDash=[4, 3]).encode(
        x=x, y="best:Q", tooltip=[alt.Tooltip("best:Q", title="best so far", format=".5~g")])
    return alt.layer(points, best).properties(height=260)


def _state_color(legend: bool = True) -> alt.Color:
    return alt.Color("state:N", title="state", scale=alt.Scale(domain=list(STATE_COLORS),
                                                                range=list(STATE_COLORS.values())),
                     legend=alt.Legend(orient="bottom") if legend else None)


def state_legend() -> str:
    """The state colours as one line of Streamlit markdown, for charts drawn without a legend."""
    names = {"finished": "blue", "running": "green", STOPPED: "orange", "failed": "red", "crashed": "violet"}
    return " ".join(f":{color}[●] {state}" for state, color in names.items())


def _normalise(column: pd.Series, log: bool) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Values mapped to [0, 1] for a parallel axis, and the labels at its ends (each category's own)."""
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if not numeric:
        categories = sorted({_text(v) for v in column})
        position = {c: (i / (len(categories) - 1) if len(categories) > 1 else 0.5) for i, c in enumerate(categories)}
        return np.array([position[_text(v)] for v in column]), [(position[c], c) for c in categories]
    values = pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    scaled = np.log10(np.where(values > 0, values, np.nan)) if log else values
    finite = scaled[np.isfinite(scaled)]
    if not finite.size:
        return np.full(len(values), np.nan), []
    low, high = float(finite.min()), float(finite.max())
    span = high - low
    norm = (scaled - low) / span if span > 0 else np.full(len(values), 0.5)
    low_value, high_value = np.nanmin(values[np.isfinite(scaled)]), np.nanmax(values[np.isfinite(scaled)])
    return norm, [(0.0 if span > 0 else 0.5, f"{low_value:.3g}"), (1.0 if span > 0 else 0.5, f"{high_value:.3g}")]


def _column(values: list[Any]) -> pd.Series:
    if all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
        return pd.Series(values, dtype="float64")
    return pd.Series([_text(v) if v is not None else None for v in values], dtype="object")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def _field(name: str) -> str:
    """A column name as a Vega-Lite field: dots and brackets would read as nested access."""
    return name.replace("\\", "\\\\").replace(".", "\\.").replace("[", "\\[").replace("]", "\\]")
