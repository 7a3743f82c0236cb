"""The controller's state in ClickHouse: `sweeps` rows, `sweep_trials` rows, and what runs report.

Every change is a new row version (`ReplacingMergeTree(updated_at)`), written
before the controller answers, so a restarted ingest reads back exactly what
agents were told.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, fields
from typing import Any

import pyarrow as pa

from ..storage import Store
from ..validate import TS

LIVE = "running"
ENDED = ("finished", "failed", "killed", "crashed")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class SweepRow:
    project: str
    sweep_id: str
    config: str  # the YAML as JSON text
    state: str
    created_at: int
    updated_at: int


@dataclass
class Trial:
    project: str
    sweep_id: str
    run_id: str
    seq: int
    grid_index: int
    params: str  # JSON, nested as in the sweep's `parameters`
    state: str = LIVE
    agent_id: str = ""
    host: str = ""
    claim_id: str = ""
    exit_code: int = 0
    error: str = ""
    stop_reason: str = ""
    objective: float | None = None
    claimed_at: int = 0
    ended_at: int | None = None
    updated_at: int = 0
    last_seen: float = 0.0  # monotonic time of the agent's last word about it; not stored

    @property
    def running(self) -> bool:
        return self.state == LIVE


TRIAL_COLUMNS = [f.name for f in fields(Trial) if f.name != "last_seen"]
TRIAL_TIMES = ("claimed_at", "ended_at", "updated_at")
_TRIAL_TYPES = {"seq": pa.uint32(), "grid_index": pa.int64(), "exit_code": pa.int32(), "objective": pa.float64(),
                **{c: TS for c in TRIAL_TIMES}}


def write_sweep(store: Store, row: SweepRow) -> None:
    store.insert("sweeps", pa.table({
        "project": [row.project], "sweep_id": [row.sweep_id], "config": [row.config], "state": [row.state],
        "created_at": pa.array([row.created_at], TS), "updated_at": pa.array([row.updated_at], TS)}))


def read_sweep(store: Store, sweep_id: str) -> SweepRow | None:
    rows = store.query_rows(
        "SELECT project, sweep_id, config, state, toUnixTimestamp64Micro(created_at), "
        "toUnixTimestamp64Micro(updated_at) FROM sweeps FINAL WHERE sweep_id = {s:String} "
        "ORDER BY updated_at DESC LIMIT 1", {"s": sweep_id})
    return SweepRow(*rows[0]) if rows else None


def write_trial(store: Store, trial: Trial) -> None:
    stamp = now_us()
    trial.updated_at = max(stamp, trial.updated_at + 1)
    store.insert("sweep_trials", pa.table({
        c: pa.array([getattr(trial, c)], _TRIAL_TYPES.get(c, pa.string())) for c in TRIAL_COLUMNS}))


def read_trials(store: Store, sweep_id: str) -> list[Trial]:
    select = ", ".join(f"toUnixTimestamp64Micro({c})" if c in TRIAL_TIMES else f"`{c}`" for c in TRIAL_COLUMNS)
    rows = store.query_rows(f"SELECT {select} FROM sweep_trials FINAL WHERE sweep_id = {{s:String}} ORDER BY seq",
                            {"s": sweep_id})
    return [Trial(**dict(zip(TRIAL_COLUMNS, row))) for row in rows]


def run_summaries(store: Store, sweep_id: str) -> dict[str, tuple[str, str]]:
    """{run id: (state, summary JSON)} for the sweep's runs as stored."""
    rows = store.query_rows("SELECT run_id, state, summary FROM runs FINAL WHERE sweep_id = {s:String}",
                            {"s": sweep_id})
    return {run_id: (state, summary) for run_id, state, summary in rows}


def metric_histories(store: Store, project: str, run_ids: list[str], key: str) -> dict[str, list[float]]:
    """{run id: the metric's values in step order} — one value per time it was logged."""
    if not run_ids:
        return {}
    rows = store.query_rows(
        "SELECT run_id, arrayMap(p -> p.2, arraySort(p -> p.1, groupArray((step, value)))) FROM metrics FINAL "
        "WHERE project = {p:String} AND run_id IN {r:Array(String)} AND key = {k:String} GROUP BY run_id",
        {"p": project, "r": run_ids, "k": key})
    return {run_id: list(values) for run_id, values in rows}


def objective(summary_json: str, metric: str, goal: str) -> float | None:
    """The value a run's summary gives the sweep's metric: the last value, or define_metric's summary."""
    try:
        value = json.loads(summary_json or "{}").get(metric)
    except (ValueError, AttributeError):
        return None
    if isinstance(value, dict):
        preferred = ("best", "min" if goal == "minimize" else "max", "last", "mean", "first")
        value = next((value[k] for k in preferred if isinstance(value.get(k), (int, float))), None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def params_of(trial: Trial) -> dict[str, Any]:
    return json.loads(trial.params)
