"""Everything the dashboard reads, and the only place its SQL lives.

Values from users (project names, run ids, metric keys, filter text, sort
columns) are always bound as ClickHouse query parameters (`{name:Type}`), never
spliced into SQL text: every statement below is a constant. Choices such as the
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

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pulse.client import QueryClient

Query = Callable[..., pa.Table]

# -- runs -------------------------------------------------------------------------------------------

_PROJECTS = "SELECT DISTINCT project FROM runs ORDER BY project"

# When a run ended: its last heartbeat when it crashed (the reaper's stamp is later), the finish
# stamp otherwise; still running means now.
_DURATION = """
dateDiff('millisecond', created_at,
         multiIf(state = 'running', now64(6), state = 'crashed', heartbeat_at,
                 greatest(heartbeat_at, updated_at))) / 1000.0
"""

# The emitter writes NaN and Infinity into summaries (Python's json does), which ClickHouse's JSON
# functions refuse for the whole document; as values they become null.
_SUMMARY_JSON = r"replaceRegexpAll(summary, '([:\\[,]\\s*)-?(NaN|Infinity)(\\s*[,}\\]])', '\\1null\\3')"

_RUN_WHERE = """
project = {project:String}
AND ({text:String} = '' OR positionCaseInsensitiveUTF8(
        concat(name, ' ', run_id, ' ', `group`, ' ', job_type, ' ', notes, ' ', arrayStringConcat(tags, ' ')),
        {text:String}) > 0)
AND (empty({states:Array(String)}) OR has({states:Array(String)}, toString(state)))
AND ({tag:String} = '' OR has(tags, {tag:String}))
AND ({filter_key:String} = '' OR multiIf(
        {filter_op:String} = '=', filter_raw = {filter_value:String}
                                  OR JSONExtractString(filter_doc, {filter_key:String}) = {filter_value:String}
                                  OR (filter_is_number AND filter_number = {filter_number:Float64}),
        {filter_op:String} = '!=', NOT (filter_raw = {filter_value:String}
                                  OR JSONExtractString(filter_doc, {filter_key:String}) = {filter_value:String}
                                  OR (filter_is_number AND filter_number = {filter_number:Float64})),
        {filter_op:String} = '>', filter_is_number AND filter_number > {filter_number:Float64},
        {filter_op:String} = '>=', filter_is_number AND filter_number >= {filter_number:Float64},
        {filter_op:String} = '<', filter_is_number AND filter_number < {filter_number:Float64},
        {filter_op:String} = '<=', filter_is_number AND filter_number <= {filter_number:Float64},
        {filter_op:String} = 'contains', positionCaseInsensitiveUTF8(filter_raw, {filter_value:String}) > 0,
        0))
"""

_RUN_ALIASES = f"""
{_SUMMARY_JSON} AS summary_json,
if({{filter_field:String}} = 'summary', summary_json, config) AS filter_doc,
JSONExtractRaw(filter_doc, {{filter_key:String}}) AS filter_raw,
JSONType(filter_doc, {{filter_key:String}}) IN ('Int64', 'UInt64', 'Double') AS filter_is_number,
JSONExtractFloat(filter_doc, {{filter_key:String}}) AS filter_number
"""

# One page of a project's runs, filtered and sorted in ClickHouse; `total` counts every match.
# Sorting: a numeric and a text sort value per row, each used ascending or descending, with runs
# that lack the sort key last whichever the direction.
_RUNS_PAGE = f"""
SELECT run_id, name, `group`, job_type, tags, notes, sweep_id, toString(state) AS state, exit_code,
       error, host, created_at, heartbeat_at, updated_at, duration_s,
       arrayMap(k -> JSONExtractRaw(config, k), {{config_keys:Array(String)}}) AS config_values,
       arrayMap(k -> JSONExtractRaw(summary_json, k), {{summary_keys:Array(String)}}) AS summary_values,
       count() OVER () AS total
FROM (
    SELECT *,
           {_RUN_ALIASES},
           {_DURATION} AS duration_s,
           if({{sort_by:String}} = 'summary', summary_json, config) AS sort_doc,
           multiIf({{sort_by:String}} = 'created', toFloat64(toUnixTimestamp64Micro(created_at)),
                   {{sort_by:String}} = 'updated', toFloat64(toUnixTimestamp64Micro(heartbeat_at)),
                   {{sort_by:String}} = 'duration', duration_s,
                   {{sort_by:String}} IN ('config', 'summary'), JSONExtractFloat(sort_doc, {{sort_key:String}}),
                   0) AS sort_number,
           multiIf({{sort_by:String}} = 'name', name,
                   {{sort_by:String}} = 'state', toString(state),
                   {{sort_by:String}} IN ('config', 'summary'), JSONExtractString(sort_doc, {{sort_key:String}}),
                   '') AS sort_text,
           {{sort_by:String}} IN ('config', 'summary') AND NOT JSONHas(sort_doc, {{sort_key:String}}) AS sort_missing
    FROM runs FINAL
    WHERE {_RUN_WHERE}
)
ORDER BY sort_missing,
         if({{descending:Bool}}, sort_number, 0) DESC, if({{descending:Bool}}, 0, sort_number),
         if({{descending:Bool}}, sort_text, '') DESC, if({{descending:Bool}}, '', sort_text),
         created_at DESC, run_id
LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
"""

# The keys of runs' config or summary across a project, most common first, with the JSON type most
# runs give them, so the runs table can offer them as columns, filters and sort keys.
_RUN_KEYS = f"""
SELECT key, count() AS runs, topK(1)(type)[1] AS type
FROM (
    SELECT arrayJoin(JSONExtractKeys(doc)) AS key, toString(JSONType(doc, key)) AS type
    FROM (SELECT if({{field:String}} = 'summary', {_SUMMARY_JSON}, config) AS doc
          FROM runs FINAL WHERE project = {{project:String}})
)
WHERE NOT startsWith(key, '_')
GROUP BY key
ORDER BY runs DESC, key
LIMIT {{limit:UInt32}}
"""

_TAGS = """
SELECT arrayJoin(tags) AS tag, count() AS runs
FROM runs FINAL
WHERE project = {project:String}
GROUP BY tag
ORDER BY runs DESC, tag
LIMIT 500
"""

_STATES = """
SELECT toString(state) AS state, count() AS runs
FROM runs FINAL
WHERE project = {project:String}
GROUP BY state
ORDER BY runs DESC
"""

_RUN_COLUMNS = f"""
run_id, name, `group`, job_type, tags, sweep_id, toString(state) AS state, exit_code, error, host,
created_at, heartbeat_at, updated_at, {_DURATION} AS duration_s, config, summary
"""

_RUNS_BY_ID = f"""
SELECT {_RUN_COLUMNS}
FROM runs FINAL
WHERE project = {{project:String}} AND run_id IN {{run_ids:Array(String)}}
ORDER BY created_at DESC, run_id
"""

# -- scalar metrics -----------------------------------------------------------------------------------

_METRIC_KEYS = """
SELECT DISTINCT key
FROM metrics
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
ORDER BY key
"""

# Series are cut into CHUNK-step chunks first when a chart bucket spans at least one chunk: ClickHouse
# answers `GROUP BY ..., intDiv(step, 256)` from an aggregate projection of `metrics` where one exists
# (a few thousand rows for a million points) and from the points otherwise, with the same result.
# Shorter series are bucketed straight from their points. Either way each bucket keeps the min, max
# and last finite value and counts its NaN and ±Inf points. Aggregates, not FINAL: a retried point
# that has not yet collapsed repeats the same step and value, which changes none of them (only
# `points` may count it twice until the merge).
CHUNK = 256
CHUNK_PROJECTION = "step_chunks"  # the projection of `metrics` the chunked query is shaped for
PROJECTION_RECHECK_S = 300

_PROJECTIONS = """
SELECT name FROM system.projections WHERE database = currentDatabase() AND table = 'metrics'
"""

_SERIES_BOUNDS = """
SELECT run_id, key, min(step) AS first_step, max(step) AS last_step
FROM metrics
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key IN {keys:Array(String)}
GROUP BY run_id, key
"""

# From points: series named by `run_id <US> key` in {series}, each with its first step and bucket
# width at the same position of {firsts} and {widths} (the ingest refuses control characters such as
# US, 0x1F, in ids and keys).
_SERIES = """
SELECT run_id, key, step_hi AS step, ts_hi AS ts, v_min AS min, v_max AS max, v_last AS last,
       n_nan AS nan, n_posinf AS posinf, n_neginf AS neginf, n AS points
FROM (
    SELECT run_id, key,
           indexOf({series:Array(String)}, concat(run_id, '\\x1F', key)) AS i,
           intDiv(step - {firsts:Array(Int64)}[i], greatest({widths:Array(Int64)}[i], 1)) AS bucket,
           max(step) AS step_hi,
           max(ts) AS ts_hi,
           minIfOrNull(value, isFinite(value)) AS v_min,
           maxIfOrNull(value, isFinite(value)) AS v_max,
           argMaxIfOrNull(value, step, isFinite(value)) AS v_last,
           countIf(isNaN(value)) AS n_nan,
           countIf(value = inf) AS n_posinf,
           countIf(value = -inf) AS n_neginf,
           count() AS n
    FROM metrics
    WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key IN {keys:Array(String)}
      AND i > 0
    GROUP BY run_id, key, i, bucket
)
ORDER BY run_id, key, step
"""

# From chunks: the inner query is the projection's shape (it must stay textually so); the outer one
# puts each chunk into the bucket of its last step.
_SERIES_CHUNKED = """
SELECT run_id, key, step_hi AS step, ts_hi AS ts, v_min AS min, v_max AS max, v_last AS last,
       n_nan AS nan, n_posinf AS posinf, n_neginf AS neginf, n AS points
FROM (
    SELECT run_id, key,
           indexOf({series:Array(String)}, concat(run_id, '\\x1F', key)) AS i,
           intDiv(c_last - {firsts:Array(Int64)}[i], greatest({widths:Array(Int64)}[i], 1)) AS bucket,
           max(c_last) AS step_hi,
           max(c_ts) AS ts_hi,
           minIfOrNull(c_min, c_finite > 0) AS v_min,
           maxIfOrNull(c_max, c_finite > 0) AS v_max,
           argMaxIfOrNull(c_lastv, c_last, c_finite > 0) AS v_last,
           sum(c_nan) AS n_nan,
           sum(c_posinf) AS n_posinf,
           sum(c_neginf) AS n_neginf,
           sum(c_n) AS n
    FROM (
        SELECT run_id, key, intDiv(step, 256) AS chunk,
               min(step) AS c_first, max(step) AS c_last, max(ts) AS c_ts,
               minIf(value, isFinite(value)) AS c_min, maxIf(value, isFinite(value)) AS c_max,
               argMaxIf(value, step, isFinite(value)) AS c_lastv,
               countIf(isNaN(value)) AS c_nan, countIf(value = inf) AS c_posinf, countIf(value = -inf) AS c_neginf,
               count() AS c_n, c_n - c_nan - c_posinf - c_neginf AS c_finite
        FROM metrics
        WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key IN {keys:Array(String)}
        GROUP BY run_id, key, intDiv(step, 256)
    )
    WHERE i > 0
    GROUP BY run_id, key, i, bucket
)
ORDER BY run_id, key, step
"""

# -- system metrics -----------------------------------------------------------------------------------

_SYSTEM_KEYS = """
SELECT key, groupUniqArray(toString(device)) AS devices, groupUniqArray(toString(host)) AS hosts
FROM system_metrics
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
GROUP BY key
ORDER BY key
"""

# As _SERIES, over sample time (milliseconds) instead of steps.
_SYSTEM_SERIES = """
SELECT run_id, host, device, key, ts_hi AS ts, v_min AS min, v_max AS max, v_last AS last,
       n_nan AS nan, n_posinf AS posinf, n_neginf AS neginf, n AS points
FROM (
    SELECT run_id, host, device, key,
           intDiv(toUnixTimestamp64Milli(ts) - bounds.first_ms, bounds.width) AS bucket,
           max(ts) AS ts_hi,
           minIfOrNull(value, isFinite(value)) AS v_min,
           maxIfOrNull(value, isFinite(value)) AS v_max,
           argMaxIfOrNull(value, ts, isFinite(value)) AS v_last,
           countIf(isNaN(value)) AS n_nan,
           countIf(value = inf) AS n_posinf,
           countIf(value = -inf) AS n_neginf,
           count() AS n
    FROM system_metrics
    INNER JOIN (
        SELECT run_id, host, device, key, toUnixTimestamp64Milli(min(ts)) AS first_ms,
               intDiv(toUnixTimestamp64Milli(max(ts)) - toUnixTimestamp64Milli(min(ts)), {buckets:UInt32}) + 1
                   AS width
        FROM system_metrics
        WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key IN {keys:Array(String)}
        GROUP BY run_id, host, device, key
    ) AS bounds USING (run_id, host, device, key)
    WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key IN {keys:Array(String)}
    GROUP BY run_id, host, device, key, bucket
)
ORDER BY run_id, host, device, key, ts
"""

# -- model: histograms, graph, alerts -----------------------------------------------------------------

_HISTOGRAM_KEYS = """
SELECT key, count() AS rows, min(step) AS first_step, max(step) AS last_step, sum(nonfinite) AS nonfinite_total,
       minIf(step, nonfinite > 0) AS first_nonfinite_step
FROM histograms
WHERE project = {project:String} AND run_id = {run_id:String}
GROUP BY key
ORDER BY key
"""

# At most {steps} histograms per key, evenly spread over the run: the last one of each step bucket.
_HISTOGRAMS = """
SELECT key, step_hi AS step, h_edges AS edges, h_counts AS counts, h_min AS min, h_max AS max,
       h_nonfinite AS nonfinite
FROM (
    SELECT key, intDiv(step - bounds.first_step, bounds.width) AS bucket, max(step) AS step_hi,
           argMax(bucket_edges, step) AS h_edges, argMax(bucket_counts, step) AS h_counts,
           argMax(min, step) AS h_min, argMax(max, step) AS h_max, sum(nonfinite) AS h_nonfinite
    FROM histograms
    INNER JOIN (
        SELECT key, min(step) AS first_step, intDiv(max(step) - min(step), {steps:UInt32}) + 1 AS width
        FROM histograms
        WHERE project = {project:String} AND run_id = {run_id:String} AND key IN {keys:Array(String)}
        GROUP BY key
    ) AS bounds USING (key)
    WHERE project = {project:String} AND run_id = {run_id:String} AND key IN {keys:Array(String)}
    GROUP BY key, bucket
)
ORDER BY key, step
"""

_MODEL_GRAPH = """
SELECT argMax(graph, ts) AS graph
FROM model_graphs
WHERE project = {project:String} AND run_id = {run_id:String}
"""

_ALERTS = """
SELECT run_id, ts, toString(level) AS level, title, text
FROM alerts FINAL
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
ORDER BY ts DESC
LIMIT {limit:UInt32}
"""

# -- media --------------------------------------------------------------------------------------------

_MEDIA_KEYS = """
SELECT key, toString(any(kind)) AS kind, count() AS items, groupUniqArray(step) AS steps
FROM media FINAL
WHERE project = {project:String} AND run_id = {run_id:String}
GROUP BY key
ORDER BY key
"""

_MEDIA = """
SELECT step, idx, toString(kind) AS kind, uri, replaceAll(toString(sha256), char(0), '') AS sha256,
       toString(mime) AS mime, width, height, caption
FROM media FINAL
WHERE project = {project:String} AND run_id = {run_id:String} AND key = {key:String} AND step = {step:Int64}
ORDER BY idx
LIMIT 500
"""

# -- sweeps -------------------------------------------------------------------------------------------

# Every sweep of a project: registered ones (the `sweeps` table) and any that only runs name, with
# how their trials stand.
_SWEEPS = """
SELECT if(s.sweep_id != '', s.sweep_id, r.sweep_id) AS sweep_id,
       s.config AS config, toString(s.state) AS state, s.created_at AS created_at,
       r.trials AS trials, r.running AS running, r.finished AS finished, r.stopped AS stopped,
       r.failed AS failed, r.first_run AS first_run, r.last_run AS last_run
FROM (SELECT sweep_id, config, state, created_at FROM sweeps FINAL WHERE project = {project:String}) AS s
FULL OUTER JOIN (
    SELECT sweep_id, count() AS trials, countIf(state = 'running') AS running,
           countIf(state = 'finished') AS finished, countIf(state = 'killed') AS stopped,
           countIf(state IN ('failed', 'crashed')) AS failed,
           min(created_at) AS first_run, max(created_at) AS last_run
    FROM runs FINAL
    WHERE project = {project:String} AND sweep_id != ''
    GROUP BY sweep_id
) AS r ON s.sweep_id = r.sweep_id
ORDER BY greatest(s.created_at, r.first_run) DESC, sweep_id
"""

_SWEEP_RUNS = f"""
SELECT {_RUN_COLUMNS}
FROM runs FINAL
WHERE project = {{project:String}} AND sweep_id = {{sweep_id:String}}
ORDER BY created_at, run_id
LIMIT 20000
"""

# -- SQL console ---------------------------------------------------------------------------------------

_SCHEMA = """
SELECT table, name AS column, type
FROM system.columns
WHERE database = currentDatabase() AND table NOT LIKE '.%'
ORDER BY table, position
"""

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
                "filter_number": number}


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
    (default: $PULSE_SERVER), which is the only way to read the embedded store.
    """

    def __init__(self, server: str | None = None, clickhouse_url: str | None = None) -> None:
        url = clickhouse_url if clickhouse_url is not None else os.environ.get("PULSE_CLICKHOUSE_URL", "")
        if url.startswith(("http://", "https://")):
            self.address = _without_password(url)
            try:
                self._query = _clickhouse_query(url)
            except Exception as exc:  # the driver asks the server for its version at once
                raise DataError(f"{self.address}: {_first_line(exc)}") from exc
        else:
            client = QueryClient(server or os.environ.get("PULSE_SERVER") or None)
            self.address = client.server
            self._query = client.query
        self._chunk_projection = False
        self._projection_checked = -float("inf")

    # -- runs ---------------------------------------------------------------------------------------

    def projects(self) -> list[str]:
        """Every project that has runs, sorted."""
        return self._run(_PROJECTS, {}).column("project").to_pylist()

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
        return self._run(_RUNS_PAGE, parameters)

    def run_keys(self, project: str, field: str = "config", limit: int = 200) -> pa.Table:
        """Top-level keys of the runs' `config` (or `summary`): key, runs (how many have it), type."""
        if field not in ("config", "summary"):
            raise ValueError(f"field must be 'config' or 'summary', not {field!r}")
        return self._run(_RUN_KEYS, {"project": project, "field": field, "limit": int(limit)})

    def tags(self, project: str) -> pa.Table:
        """tag, runs: the project's tags, most used first."""
        return self._run(_TAGS, {"project": project})

    def states(self, project: str) -> pa.Table:
        """state, runs: how many of the project's runs are in each state."""
        return self._run(_STATES, {"project": project})

    def runs(self, project: str, run_ids: Sequence[str]) -> pa.Table:
        """The named runs, newest first, with config and summary as JSON text."""
        if not run_ids:
            return self._run(_RUNS_BY_ID, {"project": project, "run_ids": [""]}).slice(0, 0)
        return self._run(_RUNS_BY_ID, {"project": project, "run_ids": list(run_ids)})

    # -- metrics -----------------------------------------------------------------------------------

    def metric_keys(self, project: str, run_ids: Sequence[str]) -> list[str]:
        """Metric keys logged by any of `run_ids`, sorted."""
        if not run_ids:
            return []
        table = self._run(_METRIC_KEYS, {"project": project, "run_ids": list(run_ids)})
        return table.column("key").to_pylist()

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
        bounds = self._run(_SERIES_BOUNDS, scope).to_pylist()
        plans: dict[str, dict[str, list]] = {"chunked": _plan(), "points": _plan()}
        chunked = self._has_chunk_projection()
        for row in bounds:
            width = (row["last_step"] - row["first_step"]) // buckets + 1
            plan = plans["chunked" if chunked and width >= CHUNK else "points"]
            plan["series"].append(f"{row['run_id']}\x1f{row['key']}")
            plan["firsts"].append(row["first_step"])
            plan["widths"].append(width)
        wanted = [name for name in ("points", "chunked") if plans[name]["series"]] or ["points"]
        nothing = {"series": [""], "firsts": [0], "widths": [1]}
        tables = [self._run(_SERIES if name == "points" else _SERIES_CHUNKED,
                            scope | (plans[name] if plans[name]["series"] else nothing)) for name in wanted]
        if len(tables) == 1:
            return tables[0]
        merged = pa.concat_tables([tables[0], tables[1].cast(tables[0].schema)])
        return merged.sort_by([("run_id", "ascending"), ("key", "ascending"), ("step", "ascending")])

    # -- system --------------------------------------------------------------------------------------

    def system_keys(self, project: str, run_ids: Sequence[str]) -> pa.Table:
        """key, devices, hosts: what the system monitor of `run_ids` sampled."""
        return self._run(_SYSTEM_KEYS, {"project": project, "run_ids": list(run_ids) or [""]})

    def system_series(self, project: str, run_ids: Sequence[str], keys: Sequence[str],
                      buckets: int = 600) -> pa.Table:
        """System samples downsampled over time per run, host, device and key (columns as `series`,
        with host and device instead of step)."""
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, not {buckets}")
        return self._run(_SYSTEM_SERIES, {"project": project, "run_ids": list(run_ids) or [""],
                                          "keys": list(keys) or [""], "buckets": int(buckets)})

    # -- model ---------------------------------------------------------------------------------------

    def histogram_keys(self, project: str, run_id: str) -> pa.Table:
        """key, rows, first_step, last_step, nonfinite_total, first_nonfinite_step of the run's histograms."""
        return self._run(_HISTOGRAM_KEYS, {"project": project, "run_id": run_id})

    def histograms(self, project: str, run_id: str, keys: Sequence[str], steps: int = 100) -> pa.Table:
        """key, step, edges, counts, min, max, nonfinite: at most `steps` histograms per key."""
        if steps < 1:
            raise ValueError(f"steps must be at least 1, not {steps}")
        return self._run(_HISTOGRAMS, {"project": project, "run_id": run_id, "keys": list(keys) or [""],
                                       "steps": int(steps)})

    def model_graph(self, project: str, run_id: str) -> str:
        """The run's model graph (JSON text), '' when it logged none."""
        rows = self._run(_MODEL_GRAPH, {"project": project, "run_id": run_id}).column("graph").to_pylist()
        return rows[0] if rows and rows[0] else ""

    def alerts(self, project: str, run_ids: Sequence[str], limit: int = 500) -> pa.Table:
        """run_id, ts, level, title, text: the runs' alerts, newest first."""
        return self._run(_ALERTS, {"project": project, "run_ids": list(run_ids) or [""], "limit": int(limit)})

    # -- media ---------------------------------------------------------------------------------------

    def media_keys(self, project: str, run_id: str) -> pa.Table:
        """key, kind, items, steps (every step that logged the key)."""
        return self._run(_MEDIA_KEYS, {"project": project, "run_id": run_id})

    def media(self, project: str, run_id: str, key: str, step: int) -> pa.Table:
        """step, idx, kind, uri, sha256, mime, width, height, caption of one key at one step."""
        return self._run(_MEDIA, {"project": project, "run_id": run_id, "key": key, "step": int(step)})

    # -- sweeps --------------------------------------------------------------------------------------

    def sweeps(self, project: str) -> pa.Table:
        """sweep_id, config ('' when no `sweeps` row), state, created_at, trials, running, finished,
        stopped (killed, e.g. by early termination), failed, first_run, last_run."""
        return self._run(_SWEEPS, {"project": project})

    def sweep_runs(self, project: str, sweep_id: str) -> pa.Table:
        """The sweep's trials, oldest first, with config and summary as JSON text."""
        return self._run(_SWEEP_RUNS, {"project": project, "sweep_id": sweep_id})

    # -- SQL console ---------------------------------------------------------------------------------

    def schema(self) -> pa.Table:
        """table, column, type of every table users may query."""
        return self._run(_SCHEMA, {})

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
        if now - self._projection_checked >= PROJECTION_RECHECK_S:
            try:
                names = self._run(_PROJECTIONS, {}).column("name").to_pylist()
            except DataError:  # e.g. a key for one project may not read system tables
                names = []
            self._chunk_projection = CHUNK_PROJECTION in names
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
