"""Turning a page of runs (`Source.runs_page`) into the table the Runs page shows."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

STATE_COLORS = {"running": "#2e9e44", "finished": "#4e79a7", "failed": "#d62728", "crashed": "#d62728",
                "killed": "#e07b00"}
# Failed and crashed runs stand out at a glance; killed ones (stopped early, Ctrl-C) a little.
ROW_TINTS = {"crashed": "background-color: rgba(214, 39, 40, 0.16)",
             "failed": "background-color: rgba(214, 39, 40, 0.10)",
             "killed": "background-color: rgba(255, 160, 0, 0.10)"}
# Which part of a define_metric summary ({"min": ..., "last": ...}) stands for the metric.
SUMMARY_PREFERENCE = ("best", "min", "max", "last", "mean", "first")


def runs_frame(page: pd.DataFrame, config_keys: Sequence[str], summary_keys: Sequence[str]) -> pd.DataFrame:
    """One row per run: state, name, created, duration, tags, group, config.*, summary.*, run id."""
    table = pd.DataFrame({
        "state": page["state"],
        "name": page["name"].where(page["name"] != "", page["run_id"]),
        "created": pd.to_datetime(page["created_at"], utc=True).dt.tz_localize(None),
        "duration": [format_duration(s) for s in page["duration_s"]],
        "tags": [list(t) if t is not None else [] for t in page["tags"]],
        "group": page["group"],
    })
    for i, key in enumerate(config_keys):
        table[f"config.{key}"] = _column([raw[i] if raw is not None else "" for raw in page["config_values"]])
    for i, key in enumerate(summary_keys):
        table[key] = _column([raw[i] if raw is not None else "" for raw in page["summary_values"]], summary=True)
    table["run id"] = page["run_id"]
    return table


def styled(table: pd.DataFrame):
    """The table with each state in its colour and failed, crashed and killed rows tinted."""
    tints = [ROW_TINTS.get(state, "") for state in table["state"]]

    def column_style(column: pd.Series) -> list[str]:
        if column.name != "state":
            return tints
        return [f"{tint}; color: {STATE_COLORS.get(state, '#333')}; font-weight: 600".lstrip("; ")
                for tint, state in zip(tints, column)]

    numbers = [c for c in table.columns if table[c].dtype.kind == "f"]
    return table.style.apply(column_style, axis=0).format(_number, subset=numbers, na_rep="")


def _number(value: float) -> str:
    return f"{value:.5g}"


def format_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def summary_number(value: Any) -> float | None:
    """A summary entry as one number: itself, or the preferred part of a define_metric summary."""
    if isinstance(value, dict):
        for part in SUMMARY_PREFERENCE:
            if part in value:
                return summary_number(value[part])
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def decode(raw: str) -> Any:
    """A raw JSON value from ClickHouse (also Python's NaN/Infinity); None when absent or invalid."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _column(raws: list[str], summary: bool = False) -> pd.Series:
    """Numbers stay numbers (so the table sorts and formats them); anything else becomes text."""
    values = [decode(raw) for raw in raws]
    if summary:
        numbers = [summary_number(v) for v in values]
        if all(n is not None or v is None for n, v in zip(numbers, values)):
            return pd.Series(numbers, dtype="float64")
    elif all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values):
        return pd.Series([float(v) if v is not None else None for v in values], dtype="float64")
    return pd.Series([_text(v) for v in values], dtype="object")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value)
