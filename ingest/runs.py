"""Run lifecycle: running -> finished / failed / killed, or crashed when heartbeats stop.

The registry keeps the current row of every active run in memory and writes a
whole new row version (`ReplacingMergeTree(updated_at)`) whenever it changes;
heartbeats rewrite a row at most once a second. Rows are written by the
flusher in the same flush as the batch that changed them, so an ack covers
the run's state too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pyarrow as pa

from pulse.v1 import telemetry_pb2 as pb

from .storage import Store
from .validate import MAX_TS_US, MIN_TS_US, TS

COLUMNS = ("project", "run_id", "name", "group", "job_type", "tags", "notes", "sweep_id", "config",
           "state", "exit_code", "error", "host", "created_at", "updated_at", "heartbeat_at",
           "summary", "metric_defs", "metadata", "deleted")
TIME_COLUMNS = ("created_at", "updated_at", "heartbeat_at")
TERMINAL = {"finished", "failed", "killed", "crashed"}
HEARTBEAT_WRITE_US = 1_000_000

Key = tuple[str, str]
log = logging.getLogger(__name__)


class UnknownRun(LookupError):
    pass


def now_us() -> int:
    return time.time_ns() // 1000


class RunRegistry:
    def __init__(self, store: Store, heartbeat_timeout: float = 60.0) -> None:
        self._store = store
        self._timeout_us = int(heartbeat_timeout * 1e6)
        self._runs: dict[Key, dict[str, Any]] = {}
        self._written_heartbeat: dict[Key, int] = {}
        self._dirty: set[Key] = set()
        self._lock = threading.Lock()

    def load_running(self) -> int:
        """Adopt runs left `running` by a previous ingest: they crash unless heartbeats resume."""
        rows = self._select("state = 'running'", {})
        with self._lock:
            for row in rows:
                self._runs.setdefault((row["project"], row["run_id"]), row)
        return len(rows)

    def get(self, project: str, run_id: str) -> dict[str, Any] | None:
        key = (project, run_id)
        with self._lock:
            run = self._runs.get(key)
        if run is None:
            rows = self._select("project = {p:String} AND run_id = {r:String}",
                                {"p": project, "r": run_id})
            if rows:
                with self._lock:
                    run = self._runs.setdefault(key, rows[0])
        return dict(run) if run else None

    def _select(self, where: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        columns = ", ".join(f"`{c}`" for c in COLUMNS)
        times = ", ".join(f"toUnixTimestamp64Micro({c})" for c in TIME_COLUMNS)
        rows = self._store.query_rows(f"SELECT {columns}, {times} FROM runs FINAL WHERE {where}",
                                      parameters)
        found = []
        for row in rows:
            run = dict(zip(COLUMNS, row[:len(COLUMNS)]))
            run.update(zip(TIME_COLUMNS, row[len(COLUMNS):]))
            run["tags"] = list(run["tags"])
            found.append(run)
        return found

    def apply(self, batch: pb.Batch, events: list[pb.Event]) -> None:
        """Apply a batch's lifecycle events and its heartbeat; raise UnknownRun for a stranger."""
        key = (batch.project, batch.run_id)
        # Look in the store even when the batch starts the run: a replayed start (pulse sync) must
        # find the run's stored state, or it would begin the run anew and undo its end.
        if self.get(*key) is None and not any(e.WhichOneof("kind") == "start" for e in events):
            raise UnknownRun(f"unknown run {batch.run_id!r} in project {batch.project!r}: "
                             "a run's first batch must carry its RunStart event")
        stamp = now_us()
        with self._lock:
            run = self._runs.get(key)
            changed = False
            for event in events:
                run = _apply_event(run, key, event, stamp)
                changed = True
            if run is None:  # only rare events (graph, alert) for a run another replica knows
                return
            if not batch.replay:
                if run["state"] == "crashed":
                    run["state"], run["error"] = "running", ""
                    changed = True
                run["heartbeat_at"] = stamp
                if stamp - self._written_heartbeat.get(key, 0) >= HEARTBEAT_WRITE_US:
                    changed = True
            self._runs[key] = run
            if changed:
                run["updated_at"] = max(stamp, run["updated_at"] + 1)
                self._dirty.add(key)

    def edit(self, project: str, run_id: str, **fields: Any) -> dict[str, Any]:
        """Change a run's `name`, `tags`, `notes` or `deleted` (ingest/run_edits.py, checked there) as a
        new row version, written by the next flush; the edited row. Held in memory like a live run's
        row, so the run's own later updates carry the edit. UnknownRun when there is no such run."""
        if unknown := set(fields) - {"name", "tags", "notes", "deleted"}:
            raise ValueError(f"runs cannot be edited in {sorted(unknown)}")
        key = (project, run_id)
        for _ in range(3):  # a flush may forget an ended run between the lookup and the lock
            if self.get(project, run_id) is None:
                raise UnknownRun(f"no run {run_id!r} in project {project!r}")
            with self._lock:
                run = self._runs.get(key)
                if run is not None:
                    run.update(fields)
                    run["updated_at"] = max(now_us(), run["updated_at"] + 1)
                    self._dirty.add(key)
                    return dict(run)
        raise UnknownRun(f"run {run_id!r} of project {project!r} could not be loaded")

    def reap(self) -> list[Key]:
        """Mark `crashed` every running run whose heartbeat is older than the timeout.

        The store has the last word: another ingest replica may be receiving
        the run's stream and writing its heartbeats, so a run is crashed only
        if the stored heartbeat is stale too; and another replica (the sweep
        controller's) may have ended it, in which case its newer row stands.
        """
        stamp = now_us()
        with self._lock:
            stale = [key for key, run in self._runs.items()
                     if run["state"] == "running" and stamp - run["heartbeat_at"] > self._timeout_us]
        if not stale:
            return []
        stored = self._stored_rows(stale)
        crashed = []
        with self._lock:
            for key in stale:
                run = self._runs.get(key)
                if run is None or run["state"] != "running":
                    continue
                heartbeat, state, updated = stored.get(key, (0, "", 0))
                if state in TERMINAL and updated > run["updated_at"] and key not in self._dirty:
                    del self._runs[key]  # ended elsewhere after our last write: forget it, write nothing
                    self._written_heartbeat.pop(key, None)
                    continue
                run["heartbeat_at"] = max(run["heartbeat_at"], heartbeat)
                if stamp - run["heartbeat_at"] > self._timeout_us:
                    run["state"] = "crashed"
                    run["error"] = f"no heartbeat for {self._timeout_us / 1e6:g} s"
                    run["updated_at"] = max(stamp, run["updated_at"] + 1)
                    self._dirty.add(key)
                    crashed.append(key)
        return crashed

    def _stored_rows(self, keys: list[Key]) -> dict[Key, tuple[int, str, int]]:
        """(latest heartbeat, current state, its updated_at) of each run as stored, whoever wrote it."""
        try:
            rows = self._store.query_rows(
                "SELECT project, run_id, toUnixTimestamp64Micro(max(heartbeat_at)), argMax(state, updated_at), "
                "toUnixTimestamp64Micro(max(updated_at)) FROM runs "
                "WHERE (project, run_id) IN {keys:Array(Tuple(String, String))} GROUP BY project, run_id",
                {"keys": keys})
        except Exception:  # the store is away: judge by what this replica saw
            log.warning("could not read stored heartbeats; judging runs by this replica's view", exc_info=True)
            return {}
        return {(project, run_id): (heartbeat, state, updated) for project, run_id, heartbeat, state, updated in rows}

    def drain(self) -> tuple[pa.Table | None, set[Key]]:
        """The rows to write for runs changed since the last drain."""
        with self._lock:
            keys, self._dirty = self._dirty, set()
            rows = [dict(self._runs[key]) for key in keys]
        if not rows:
            return None, keys
        columns = {c: [row[c] for row in rows] for c in COLUMNS}
        table = pa.table({
            c: pa.array(v, TS if c in TIME_COLUMNS else
                        pa.list_(pa.string()) if c == "tags" else
                        pa.int32() if c == "exit_code" else pa.uint8() if c == "deleted" else pa.string())
            for c, v in columns.items()
        })
        return table, keys

    def written(self, keys: set[Key]) -> None:
        """The drained rows are committed; forget runs that are over."""
        with self._lock:
            for key in keys:
                run = self._runs.get(key)
                if run is None:
                    continue
                self._written_heartbeat[key] = run["heartbeat_at"]
                if run["state"] in TERMINAL and key not in self._dirty:
                    del self._runs[key]
                    self._written_heartbeat.pop(key, None)


def _new_run(key: Key, stamp: int) -> dict[str, Any]:
    return {"project": key[0], "run_id": key[1], "name": key[1], "group": "", "job_type": "",
            "tags": [], "notes": "", "sweep_id": "", "config": "{}", "state": "running",
            "exit_code": 0, "error": "", "host": "", "created_at": stamp, "updated_at": 0,
            "heartbeat_at": stamp, "summary": "{}", "metric_defs": "{}", "metadata": "{}", "deleted": 0}


def _apply_event(run: dict[str, Any] | None, key: Key, event: pb.Event, stamp: int) -> dict[str, Any] | None:
    kind = event.WhichOneof("kind")
    if kind == "start":
        start = event.start
        if run is not None and start.created_at_us == run["created_at"]:
            return run  # the same start again (a resent batch): nothing changes
        if run is not None and start.resume:
            # Another process continues the run: it runs again; what it says anew replaces the old.
            run.update(state="running", exit_code=0, error="", host=start.host or run["host"])
            for field, value in (("name", start.name), ("group", start.group), ("job_type", start.job_type),
                                 ("notes", start.notes), ("sweep_id", start.sweep_id)):
                run[field] = value or run[field]
            run["tags"] = list(start.tags) or run["tags"]
            if start.config_json and start.config_json != "{}":
                run["config"] = start.config_json
            run["metadata"] = start.metadata_json or run["metadata"]
            return run
        if run is None:
            run = _new_run(key, start.created_at_us or stamp)
        run.update(name=start.name or key[1], group=start.group, job_type=start.job_type,
                   tags=list(start.tags), notes=start.notes, sweep_id=start.sweep_id,
                   host=start.host, state="running", exit_code=0, error="")
        if start.config_json:
            run["config"] = start.config_json
        run["metadata"] = start.metadata_json or run["metadata"]
        return run
    if run is None:
        return None
    if kind == "config":
        run["config"] = event.config.config_json or "{}"
    elif kind == "summary":
        run["summary"] = event.summary.summary_json or "{}"
    elif kind == "finish":
        finish = event.finish
        run.update(state=finish.state, exit_code=finish.exit_code, error=finish.error)
        if finish.ts_us and MIN_TS_US <= finish.ts_us <= MAX_TS_US:  # 0: a client that does not say
            # The run's last sign of life is when it finished, not when the finish arrived:
            # a run uploaded by `pulse sync` days later keeps its real end (and duration).
            run["heartbeat_at"] = max(run["created_at"], finish.ts_us)
    elif kind == "update":  # run.name/tags/notes = ... in the training script
        update = event.update
        if update.HasField("name"):
            run["name"] = update.name
        if update.HasField("notes"):
            run["notes"] = update.notes
        if update.set_tags:
            run["tags"] = list(update.tags)
    elif kind == "metric":
        definitions = json.loads(run["metric_defs"] or "{}")
        m = event.metric
        definitions[m.name] = {"step_metric": m.step_metric, "summary": m.summary, "goal": m.goal,
                               "hidden": m.hidden}
        run["metric_defs"] = json.dumps(definitions)
    return run
