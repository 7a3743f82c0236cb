"""Everything the dashboard reads: `Source` runs the SQL of `dashboard.queries`, the only place
the dashboard's SQL lives.

Values from users (project names, run ids, metric keys, filter text, sort
columns) are always bound as ClickHouse query parameters (`{name:Type}`), never
spliced into SQL text: every statement is a constant. Choices such as the
sort column or the filter operator travel as parameters too and are resolved
inside the SQL by `multiIf`, so no code path builds SQL from strings. The one
exception is the SQL console, which runs the user's own statement through the
read-only path (`Source.sql`).

Series are downsampled here, in ClickHouse: each run's steps (or sample times)
are cut into at most `buckets` equal-width buckets and each bucket keeps the min,
max and last finite value plus how many NaN and ±Inf points it held, so a
million-point run costs as much as a thousand-point one and no spike or NaN is
lost to downsampling.

Example:
    source = Source()                       # PULSE_SERVER or PULSE_CLICKHOUSE_URL
    for project in source.projects():
        page = source.runs_page(project, RunFilter(states=("running",)), limit=50)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pulse.client import QueryClient

from . import queries

Query = Callable[..., pa.Table]

SORTS = ("created", "updated", "name", "state", "duration", "config", "summary")
FILTER_OPS = ("=", "!=", ">", ">=", "<", "<=", "contains")


@dataclass(frozen=True)
class RunFilter:
    """Which runs of a project to list; empty fields filter nothing.

    `key`/`op`/`value` compare one top-level entry of the runs' `config` (or, with
    field="summary", their summary) with a value: `=`/`!=` match the JSON text, the
    string or the number; `>`...`<=` compare numbers; `contains` searches the JSON text.
    """

    text: str = ""
    states: tuple[str, ...] = ()
    tag: str = ""
    field: str = "config"
    key: str = ""
    op: str = "="
    value: str = ""
    deleted: bool = False  # True: only the runs deleted from the dashboard (to restore them)

    def parameters(self) -> dict[str, Any]:
        if self.op not in FILTER_OPS:
            raise ValueError(f"filter operator must be one of {FILTER_OPS}, not {self.op!r}")
        if self.field not in ("config", "summary"):
            raise ValueError(f"filter field must be 'config' or 'summary', not {self.field!r}")
        try:
            number = float(self.value)
        except ValueError:
            number = float("nan")  # compares false with everything
        return {"text": self.text, "states": list(self.states), "tag": self.tag, "filter_field": self.field,
                "filter_key": self.key, "filter_op": self.op, "filter_value": self.value,
                "filter_number": number, "deleted": self.deleted}


@dataclass(frozen=True)
class RunSort:
    """`by` one of SORTS; `key` names the config or summary entry when `by` is config or summary."""

    by: str = "created"
    key: str = ""
    descending: bool = True


class DataError(RuntimeError):
    """The store could not answer; the message is the server's (or ClickHouse's), fit to show."""


class Source:
    """Reads the store through the ingest's Query RPC, or a ClickHouse server directly.

    A `clickhouse_url` of `http(s)://...` (default: $PULSE_CLICKHOUSE_URL) is read
    with clickhouse-connect; anything else goes through the ingest at `server`
    (default: $PULSE_SERVER), which is the only way to read the embedded store, with `api_key`
    on every query (never $PULSE_API_KEY: the dashboard reads with its user's key, or none).
    `server` is None when reading ClickHouse directly.
    """

    def __init__(self, server: str | None = None, clickhouse_url: str | None = None, api_key: str = "") -> None:
        url = clickhouse_url if clickhouse_url is not None else os.environ.get("PULSE_CLICKHOUSE_URL", "")
        self.server: str | None = None
        self._client: QueryClient | None = None
        if url.startswith(("http://", "https://")):
            self.address = _without_password(url)
            try:
                self._query = _clickhouse_query(url)
            except Exception as exc:  # the driver asks the server for its version at once
                raise DataError(f"{self.address}: {_first_line(exc)}") from exc
        else:
            client = QueryClient(server or os.environ.get("PULSE_SERVER") or None, api_key=api_key)
            self.address = self.server = client.server
            self._client = client
            self._query = client.query
        self._chunk_projection = False
        self._projection_checked = -float("inf")

    def close(self) -> None:
        """Close the channel to the ingest (a session's own Source, when its user logs out)."""
        if self._client is not None:
            self._client.close()

    # -- runs ---------------------------------------------------------------------------------------

    def projects(self) -> list[str]:
        """Every project that has runs, sorted."""
        return self._run(queries.PROJECTS, {}).column("project").to_pylist()

    def runs_page(self, project: str, where: RunFilter = RunFilter(), sort: RunSort = RunSort(),
                  limit: int = 50, offset: int = 0, config_keys: Sequence[str] = (),
                  summary_keys: Sequence[str] = ()) -> pa.Table:
        """One page of the project's runs that match `where`, in `sort` order.

        Columns: run_id, name, group, job_type, tags, notes, sweep_id, state, exit_code, error,
        host, created_at, heartbeat_at, updated_at, duration_s, config_values and summary_values
        (the raw JSON of each of `config_keys` / `summary_keys`, '' where missing), and total (how
        many runs match, on every row).
        """
        if sort.by not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}, not {sort.by!r}")
        parameters = where.parameters() | {
            "project": project, "sort_by": sort.by, "sort_key": sort.key, "descending": sort.descending,
            "limit": int(limit), "offset": int(offset), "config_keys": list(config_keys),
            "summary_keys": list(summary_keys)}
        return self._run(queries.RUNS_PAGE, parameters)

    def run_keys(self, project: str, field: str = "config", limit: int = 200, sample_runs: int = 2000,
                 keys_per_run: int = 2000) -> pa.Table:
        """Top-level keys of the runs' `config` (or `summary`): key, runs (how many have it), type; read
        from the newest `sample_runs` runs, the first `keys_per_run` keys of each."""
        if field not in ("config", "summary"):
            raise ValueError(f"field must be 'config' or 'summary', not {field!r}")
        return self._run(queries.RUN_KEYS, {"project": project, "field": field, "limit": int(limit),
                                            "sample_runs": int(sample_runs), "keys_per_run": int(keys_per_run)})

    def metric_definitions(self, project: str, run_ids: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
        """define_metric definitions of the named runs (or the project's newest): name (or glob) ->
        {step_metric, summary, goal, hidden}; the newest run's definition of a name wins."""
        rows = self._run(queries.METRIC_DEFS, {"project": project, "run_ids": list(run_ids)}).to_pylist()
        found: dict[str, dict[str, Any]] = {}
        for row in rows:
            try:
                definitions = json.loads(row["metric_defs"])
            except ValueError:
                continue
            for name, definition in (definitions.items() if isinstance(definitions, dict) else ()):
                if isinstance(definition, dict):
                    found.setdefault(name, definition)
        return found

    def tags(self, project: str) -> pa.Table:
        """tag, runs: the project's tags, most used first."""
        return self._run(queries.TAGS, {"project": project})

    def states(self, project: str, deleted: bool = False) -> pa.Table:
        """state, runs: how many of the project's runs (or of its deleted runs) are in each state."""
        return self._run(queries.STATES, {"project": project, "deleted": deleted})

    def runs(self, project: str, run_ids: Sequence[str]) -> pa.Table:
        """The named runs, newest first, with config and summary as JSON text."""
        if not run_ids:
            return self._run(queries.RUNS_BY_ID, {"project": project, "run_ids": [""]}).slice(0, 0)
        return self._run(queries.RUNS_BY_ID, {"project": project, "run_ids": list(run_ids)})

    def run_detail(self, project: str, run_id: str) -> pa.Table:
        """One run with everything its page shows (RUN_COLUMNS, metadata, metric_defs); no rows if none."""
        return self._run(queries.RUN_DETAIL, {"project": project, "run_id": run_id})

    def console(self, project: str, run_id: str, limit: int = 500, offset: int = 0) -> pa.Table:
        """ts, stream, line_no, text: the run's console lines, the last `limit` before the newest
        `offset`, oldest first."""
        return self._run(queries.CONSOLE, {"project": project, "run_id": run_id, "limit": int(limit),
                                           "offset": int(offset)})

    def console_lines(self, project: str, run_id: str) -> dict[str, int]:
        """How many console lines the run has: {"lines": n, "stderr": n}."""
        rows = self._run(queries.CONSOLE_LINES, {"project": project, "run_id": run_id}).to_pylist()
        return rows[0] if rows else {"lines": 0, "stderr": 0}

    def traceback(self, project: str, run_id: str) -> list[str]:
        """The lines of the last Python traceback in the run's stderr ([] when none)."""
        lines = self._run(queries.TRACEBACK, {"project": project, "run_id": run_id}).column("text").to_pylist()
        for end, line in enumerate(lines[1:], start=1):  # its frames are indented; the exception's line is not
            if line and not line[0].isspace():
                return lines[:end + 1]
        return lines

    def system_summary(self, project: str, run_id: str) -> pa.Table:
        """key, device, mean, max, last, samples of every system key the run's monitor sampled."""
        return self._run(queries.SYSTEM_SUMMARY, {"project": project, "run_id": run_id})

    def run_artifacts(self, project: str, run_id: str) -> pa.Table | None:
        """The artifact versions the run logged or used; None when the store has no artifact tables."""
        tables = set(self._run(queries.ARTIFACT_TABLES, {}).column("name").to_pylist())
        if tables != {"artifact_versions", "artifact_usage"}:
            return None
        return self._run(queries.RUN_ARTIFACTS, {"project": project, "run_id": run_id})

    # -- metrics -----------------------------------------------------------------------------------

    def metric_keys(self, project: str, run_ids: Sequence[str]) -> list[str]:
        """Metric keys logged by any of `run_ids`, sorted."""
        if not run_ids:
            return []
        table = self._run(queries.METRIC_KEYS, {"project": project, "run_ids": list(run_ids)})
        return table.column("key").to_pylist()

    def run_progress(self, project: str, run_ids: Sequence[str]) -> pa.Table:
        """run_id, last_step, points: how far each run has got."""
        return self._run(queries.RUN_PROGRESS, {"project": project, "run_ids": list(run_ids) or [""]})

    def series(self, project: str, run_ids: Sequence[str], keys: Sequence[str] | str,
               buckets: int = 800) -> pa.Table:
        """Each of `keys` of each run, downsampled in ClickHouse to at most `buckets` points.

        Columns: run_id, key, step (the bucket's last step), ts (its last sample time), min, max and
        last (finite values only; null when the bucket held none), nan, posinf, neginf (how many
        such points the bucket held) and points (how many points in all).
        """
        keys = [keys] if isinstance(keys, str) else list(keys)
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, not {buckets}")
        scope = {"project": project, "run_ids": list(run_ids) or [""], "keys": keys or [""]}
        bounds = self._run(queries.SERIES_BOUNDS, scope).to_pylist()
        plans: dict[str, dict[str, list]] = {"chunked": _plan(), "points": _plan()}
        chunked = self._has_chunk_projection()
        for row in bounds:
            width = (row["last_step"] - row["first_step"]) // buckets + 1
            plan = plans["chunked" if chunked and width >= queries.CHUNK else "points"]
            plan["series"].append(f"{row['run_id']}\x1f{row['key']}")
            plan["firsts"].append(row["first_step"])
            plan["widths"].append(width)
        wanted = [name for name in ("points", "chunked") if plans[name]["series"]] or ["points"]
        nothing = {"series": [""], "firsts": [0], "widths": [1]}
        tables = [self._run(queries.SERIES if name == "points" else queries.SERIES_CHUNKED,
                            scope | (plans[name] if plans[name]["series"] else nothing)) for name in wanted]
        if len(tables) == 1:
            return tables[0]
        merged = pa.concat_tables([tables[0], tables[1].cast(tables[0].schema)])
        return merged.sort_by([("run_id", "ascending"), ("key", "ascending"), ("step", "ascending")])

    # -- system --------------------------------------------------------------------------------------

    def system_keys(self, project: str, run_ids: Sequence[str]) -> pa.Table:
        """key, devices, hosts: what the system monitor of `run_ids` sampled."""
        return self._run(queries.SYSTEM_KEYS, {"project": project, "run_ids": list(run_ids) or [""]})

    def system_series(self, project: str, run_ids: Sequence[str], keys: Sequence[str],
                      buckets: int = 600) -> pa.Table:
        """System samples downsampled over time per run, host, device and key (columns as `series`,
        with host and device instead of step)."""
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, not {buckets}")
        return self._run(queries.SYSTEM_SERIES, {"project": project, "run_ids": list(run_ids) or [""],
                                          "keys": list(keys) or [""], "buckets": int(buckets)})

    # -- model ---------------------------------------------------------------------------------------

    def histogram_keys(self, project: str, run_id: str) -> pa.Table:
        """key, rows, first_step, last_step, nonfinite_total, first_nonfinite_step of the run's histograms."""
        return self._run(queries.HISTOGRAM_KEYS, {"project": project, "run_id": run_id})

    def histograms(self, project: str, run_id: str, keys: Sequence[str], steps: int = 100) -> pa.Table:
        """key, step, edges, counts, min, max, nonfinite: at most `steps` histograms per key."""
        if steps < 1:
            raise ValueError(f"steps must be at least 1, not {steps}")
        return self._run(queries.HISTOGRAMS, {"project": project, "run_id": run_id, "keys": list(keys) or [""],
                                       "steps": int(steps)})

    def model_graph(self, project: str, run_id: str) -> str:
        """The run's model graph (JSON text), '' when it logged none."""
        rows = self._run(queries.MODEL_GRAPH, {"project": project, "run_id": run_id}).column("graph").to_pylist()
        return rows[0] if rows and rows[0] else ""

    def alerts(self, project: str, run_ids: Sequence[str], limit: int = 500) -> pa.Table:
        """run_id, ts, level, title, text: the runs' alerts, newest first."""
        return self._run(queries.ALERTS, {"project": project, "run_ids": list(run_ids) or [""], "limit": int(limit)})

    # -- media ---------------------------------------------------------------------------------------

    def media_keys(self, project: str, run_ids: Sequence[str] | str) -> pa.Table:
        """key, kind, items, steps (every step that logged the key), runs (the runs that did)."""
        run_ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        return self._run(queries.MEDIA_KEYS, {"project": project, "run_ids": run_ids or [""]})

    def media_at(self, project: str, run_ids: Sequence[str], key: str, step: int) -> pa.Table:
        """run_id, step, idx, kind, uri, sha256, mime, width, height, caption: what each run logged under
        `key` at its last step at or before `step`."""
        return self._run(queries.MEDIA_AT, {"project": project, "run_ids": list(run_ids) or [""], "key": key,
                                            "step": int(step)})

    def user_histogram_keys(self, project: str, run_ids: Sequence[str]) -> pa.Table:
        """key, steps, runs of the histograms users logged (not watch()'s gradients/ and parameters/)."""
        return self._run(queries.USER_HISTOGRAM_KEYS, {"project": project, "run_ids": list(run_ids) or [""]})

    def histograms_at(self, project: str, run_ids: Sequence[str], key: str, step: int) -> pa.Table:
        """run_id, step, edges, counts: each run's histogram of `key` at its last step at or before `step`."""
        return self._run(queries.HISTOGRAMS_AT, {"project": project, "run_ids": list(run_ids) or [""], "key": key,
                                                 "step": int(step)})

    def media(self, project: str, run_id: str, key: str, step: int) -> pa.Table:
        """step, idx, kind, uri, sha256, mime, width, height, caption of one key at one step."""
        return self._run(queries.MEDIA, {"project": project, "run_id": run_id, "key": key, "step": int(step)})

    # -- sweeps --------------------------------------------------------------------------------------

    def sweeps(self, project: str) -> pa.Table:
        """sweep_id, config ('' when no `sweeps` row), state, created_at, trials, running, finished,
        stopped (killed, e.g. by early termination), failed, first_run, last_run."""
        return self._run(queries.SWEEPS, {"project": project})

    def sweep_runs(self, project: str, sweep_id: str) -> pa.Table:
        """The sweep's trials, oldest first, with config and summary as JSON text."""
        return self._run(queries.SWEEP_RUNS, {"project": project, "sweep_id": sweep_id})

    # -- SQL console ---------------------------------------------------------------------------------

    def schema(self) -> pa.Table:
        """table, column, type of every table users may query."""
        return self._run(queries.SCHEMA, {})

    def sql(self, statement: str, max_rows: int = 10_000) -> pa.Table:
        """Run a user's read-only statement; a refusal or an error is a DataError with ClickHouse's
        message. More than `max_rows` rows is an error too (ClickHouse's "limit for result")."""
        try:
            return self._query(statement, None, max_rows=max_rows)
        except Exception as exc:
            raise DataError(_first_line(exc)) from exc

    def _has_chunk_projection(self) -> bool:
        """Whether `metrics` has the chunk projection: without it, reading chunks costs more than
        reading points. Asked again every few minutes (a migration may add it)."""
        now = time.monotonic()
        if now - self._projection_checked >= queries.PROJECTION_RECHECK_S:
            try:
                names = self._run(queries.PROJECTIONS, {}).column("name").to_pylist()
            except DataError:  # e.g. a key for one project may not read system tables
                names = []
            self._chunk_projection = queries.CHUNK_PROJECTION in names
            self._projection_checked = now
        return self._chunk_projection

    def _run(self, sql: str, parameters: dict[str, Any]) -> pa.Table:
        try:
            return self._query(sql, parameters)
        except Exception as exc:  # every driver has its own errors; the page shows the message
            raise DataError(_first_line(exc)) from exc


def _plan() -> dict[str, list]:
    return {"series": [], "firsts": [], "widths": []}


def _clickhouse_query(url: str) -> Query:
    import clickhouse_connect  # deferred: only the direct-to-ClickHouse mode needs it

    # No session: the Streamlit server shares one client between browser sessions, and
    # ClickHouse refuses concurrent queries in one session.
    client = clickhouse_connect.get_client(dsn=url, autogenerate_session_id=False)

    def query(sql: str, parameters: dict[str, Any] | None = None, max_rows: int = 0) -> pa.Table:
        # Read-only on the server's side: ClickHouse itself refuses writes, DDL and lifting the
        # setting, as the ingest's Query RPC does for the embedded store.
        settings: dict[str, Any] = {"readonly": 2, "max_execution_time": 30}
        if max_rows:
            settings |= {"max_result_rows": max_rows, "result_overflow_mode": "throw"}
        return client.query_arrow(sql, parameters=parameters or None, settings=settings)

    return query


def _first_line(exc: Exception) -> str:
    """The server's message without the driver's wrapping and the echoed SQL."""
    text = str(exc).strip() or type(exc).__name__
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    return text.splitlines()[0][:2000]


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
