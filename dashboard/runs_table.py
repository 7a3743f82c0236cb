"""Turning a page of runs (`Source.runs_page`) into the table the Runs page shows."""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import pandas as pd

STATE_COLORS = {"running": "#2e9e44", "finished": "#4e79a7", "failed": "#d62728", "crashed": "#d62728",
                "killed": "#e07b00"}
# Failed and crashed runs stand out at a glance; killed ones (stopped early, Ctrl-C) a little.
ROW_TINTS = {"crashed": "background-color: rgba(214, 39, 40, 0.16)",
             "failed": "background-color: rgba(214, 39, 40, 0.10)",
             "killed": "background-color: rgba(255, 160, 0, 0.10)"}
# Which part of a define_metric summary ({"min": ..., "last": ...}) stands for the metric.
SUMMARY_PREFERENCE = ("best", "min", "max", "last", "mean", "first")


# Keys watch() and the emitter write into summaries: never a default column.
NOT_METRICS = ("grad_norm/", "param_norm/", "gradients/", "parameters/", "gradient_health", "_")
LOSS = re.compile(r"loss|error|perplexity|ppl|mse|mae|rmse", re.IGNORECASE)
SCORE = re.compile(r"acc|f1|auc|precision|recall|bleu|rouge|map|iou|dice|reward|score", re.IGNORECASE)
SPLITS = ("val", "valid", "validation", "eval", "test", "train")
# The name in a run link: runs_frame's names are links to the run page, shown as the text after '#'.
LINK_NAME = r"#(.*)$"


def run_link(project: str, run_id: str, name: str) -> str:
    """The run page's address, with the name to show after '#' (read back by LINK_NAME)."""
    return f"run?{urlencode({'project': project, 'run': run_id})}#{name or run_id}"


def link_name(link: str) -> str:
    """The name a run link shows."""
    return link.partition("#")[2]


def important_keys(summary_keys: pd.DataFrame, definitions: dict[str, dict]) -> list[str]:
    """Summary keys by how much a user wants to see them: keys their `define_metric` gave a goal,
    then a summary setting; then loss-like keys of validation, test and training; then scores
    (accuracy...); then any other number. watch()'s and the emitter's own entries never."""
    def definition(key: str) -> dict:
        if isinstance(definitions.get(key), dict):
            return definitions[key]
        return next((d for name, d in definitions.items() if fnmatch.fnmatchcase(key, name) and isinstance(d, dict)),
                    {})

    ranked = []
    for key, runs, kind in zip(summary_keys["key"], summary_keys["runs"], summary_keys["type"]):
        if key.startswith(NOT_METRICS):
            continue
        found = definition(key)
        split = key.split("/", 1)[0].lower() if "/" in key else ""
        split_rank = SPLITS.index(split) if split in SPLITS else len(SPLITS)
        if found.get("goal"):
            score = 0
        elif found.get("summary") and found.get("summary") != "none":
            score = 1
        elif kind not in ("Int64", "UInt64", "Double"):
            continue
        elif LOSS.search(key):
            score = 2
        elif SCORE.search(key):
            score = 3
        else:
            score = 4
        ranked.append((score, split_rank, -int(runs), key))
    return [key for *_, key in sorted(ranked)]


def runs_frame(page: pd.DataFrame, config_keys: Sequence[str], summary_keys: Sequence[str],
               project: str = "") -> pd.DataFrame:
    """One row per run: state, name (a link to its page), created, duration, tags, group, job type,
    summary.*, config.*, sweep, host, notes, error, run id."""
    names = page["name"].where(page["name"] != "", page["run_id"])
    table = pd.DataFrame({
        "state": page["state"],
        "name": [run_link(project, r, n) for r, n in zip(page["run_id"], names)],
        "created": pd.to_datetime(page["created_at"], utc=True).dt.tz_localize(None),
        "duration": [format_duration(s) for s in page["duration_s"]],
        "tags": [list(t) if t is not None else [] for t in page["tags"]],
        "group": page["group"],
        "job_type": page["job_type"],
    })
    # The metrics first, then the config: what a user compares runs by is in view without scrolling.
    for i, key in enumerate(summary_keys):
        table[key] = _column([raw[i] if raw is not None else "" for raw in page["summary_values"]], summary=True)
    for i, key in enumerate(config_keys):
        table[f"config.{key}"] = _column([raw[i] if raw is not None else "" for raw in page["config_values"]])
    table["sweep"] = page["sweep_id"]
    table["host"] = page["host"]
    table["notes"] = [first_line(n) for n in page["notes"]]
    table["error"] = [first_line(e) for e in page["error"]]
    table["run id"] = page["run_id"]
    return table


def first_line(text: str | None, limit: int = 200) -> str:
    line = (text or "").strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[:limit - 1] + "…"


def upfront(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`columns` (those the page sorts or filters by) moved to just after the name, so they are in view."""
    wanted = [c for c in dict.fromkeys(columns) if c in table.columns and c != "name"]
    if not wanted:
        return table
    rest = [c for c in table.columns if c not in wanted]
    at = rest.index("name") + 1
    return table[rest[:at] + wanted + rest[at:]]


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
