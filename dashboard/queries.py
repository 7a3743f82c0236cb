"""All of the dashboard's SQL, as constants: `dashboard.data.Source` runs them.

Values from users (project names, run ids, metric keys, filter text, sort
columns) are always bound as ClickHouse query parameters (`{name:Type}`), never
spliced into SQL text: every statement here is a constant. Choices such as the
sort column or the filter operator travel as parameters too and are resolved
inside the SQL by `multiIf`, so no code path builds SQL from strings.
"""

from __future__ import annotations

# -- runs -------------------------------------------------------------------------------------------

PROJECTS = "SELECT DISTINCT project FROM runs FINAL WHERE NOT deleted ORDER BY project"

# When a run ended: its last heartbeat, which a finish sets to the time the run finished (the reaper
# writes a crash later); still running means now.
DURATION = """
dateDiff('millisecond', created_at, if(state = 'running', now64(6), heartbeat_at)) / 1000.0
"""

# The emitter writes NaN and Infinity into summaries (Python's json does), which ClickHouse's JSON
# functions refuse for the whole document; as values they become null.
SUMMARY_JSON = r"replaceRegexpAll(summary, '([:\\[,]\\s*)-?(NaN|Infinity)(\\s*[,}\\]])', '\\1null\\3')"

# Deleted runs (runs.deleted, a soft delete through the Runs service) are left out of every page unless
# asked for: {deleted:Bool} lists only them (the Runs page's "deleted runs" view, to restore one).
RUN_WHERE = """
project = {project:String}
AND deleted = {deleted:Bool}
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

RUN_ALIASES = f"""
{SUMMARY_JSON} AS summary_json,
if({{filter_field:String}} = 'summary', summary_json, config) AS filter_doc,
JSONExtractRaw(filter_doc, {{filter_key:String}}) AS filter_raw,
JSONType(filter_doc, {{filter_key:String}}) IN ('Int64', 'UInt64', 'Double') AS filter_is_number,
JSONExtractFloat(filter_doc, {{filter_key:String}}) AS filter_number
"""

# One page of a project's runs, filtered and sorted in ClickHouse; `total` counts every match.
# Sorting: a numeric and a text sort value per row, each used ascending or descending, with runs
# that lack the sort key last whichever the direction.
RUNS_PAGE = f"""
SELECT run_id, name, `group`, job_type, tags, notes, sweep_id, toString(state) AS state, exit_code,
       error, host, created_at, heartbeat_at, updated_at, duration_s, deleted,
       arrayMap(k -> JSONExtractRaw(config, k), {{config_keys:Array(String)}}) AS config_values,
       arrayMap(k -> JSONExtractRaw(summary_json, k), {{summary_keys:Array(String)}}) AS summary_values,
       count() OVER () AS total
FROM (
    SELECT *,
           {RUN_ALIASES},
           {DURATION} AS duration_s,
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
    WHERE {RUN_WHERE}
)
ORDER BY sort_missing,
         if({{descending:Bool}}, sort_number, 0) DESC, if({{descending:Bool}}, 0, sort_number),
         if({{descending:Bool}}, sort_text, '') DESC, if({{descending:Bool}}, '', sort_text),
         created_at DESC, run_id
LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
"""

# The keys of runs' config or summary across a project, most common first, with the JSON type most
# runs give them, so the runs table can offer them as columns, filters and sort keys. Bounded, so one
# run with 20,000 keys or a project of 10,000 runs costs what a small one does: the newest
# {sample_runs} runs, the first {keys_per_run} keys of each, every document parsed once
# (JSONExtractKeysAndValuesRaw; asking JSONType per key parsed a document once per key), the type
# read from the raw value's first character.
RUN_KEYS = f"""
SELECT key, count() AS runs, topK(1)(type)[1] AS type
FROM (
    SELECT kv.1 AS key, weight,
           multiIf(startsWith(kv.2, char(123)), 'Object', startsWith(kv.2, '['), 'Array',
                   startsWith(kv.2, '"'), 'String', kv.2 IN ('true', 'false'), 'Bool', kv.2 = 'null', 'Null',
                   match(kv.2, '^-?[0-9]+$'), 'Int64', 'Double') AS type
    FROM (
        SELECT JSONExtractKeysAndValuesRaw(doc) AS kvs, 1 / greatest(length(kvs), 1) AS weight
        FROM (SELECT if({{field:String}} = 'summary', {SUMMARY_JSON}, config) AS doc
              FROM runs FINAL WHERE project = {{project:String}} AND NOT deleted
              ORDER BY created_at DESC LIMIT {{sample_runs:UInt32}})
    )
    ARRAY JOIN arraySlice(kvs, 1, {{keys_per_run:UInt32}}) AS kv
)
WHERE NOT startsWith(key, '_')
GROUP BY key
-- Among keys as common, those of runs with few keys first: one run's 20,000 probes rank below the
-- handful of metrics every other run has.
ORDER BY runs DESC, sum(weight) DESC, key
LIMIT {{limit:UInt32}}
"""

# define_metric definitions ({name: {step_metric, summary, goal, hidden}}) of a project's newest runs
# (or of the named runs), for the Runs page's default columns and the Charts page's x-axis.
METRIC_DEFS = """
SELECT run_id, metric_defs
FROM runs FINAL
WHERE project = {project:String} AND NOT deleted AND metric_defs NOT IN ('', '{}')
  AND (empty({run_ids:Array(String)}) OR run_id IN {run_ids:Array(String)})
ORDER BY created_at DESC
LIMIT 200
"""

TAGS = """
SELECT arrayJoin(tags) AS tag, count() AS runs
FROM runs FINAL
WHERE project = {project:String} AND NOT deleted
GROUP BY tag
ORDER BY runs DESC, tag
LIMIT 500
"""

STATES = """
SELECT toString(state) AS state, count() AS runs
FROM runs FINAL
WHERE project = {project:String} AND deleted = {deleted:Bool}
GROUP BY state
ORDER BY runs DESC
"""

RUN_COLUMNS = f"""
run_id, name, `group`, job_type, tags, notes, sweep_id, toString(state) AS state, exit_code, error, host,
created_at, heartbeat_at, updated_at, {DURATION} AS duration_s, config, summary, deleted
"""

# One run, whole, for its page: what RUN_COLUMNS has plus its metadata and metric definitions.
RUN_DETAIL = f"""
SELECT {RUN_COLUMNS}, metadata, metric_defs
FROM runs FINAL
WHERE project = {{project:String}} AND run_id = {{run_id:String}}
"""

# A run's console output, its last {limit} lines before {before} (a line number; 0 = the end),
# in order.
CONSOLE = """
SELECT ts, stream, line_no, text
FROM (
    SELECT ts, toString(stream) AS stream, line_no, text
    FROM logs FINAL
    WHERE project = {project:String} AND run_id = {run_id:String}
    ORDER BY ts DESC, line_no DESC
    LIMIT {limit:UInt32} OFFSET {offset:UInt32}
)
ORDER BY ts, line_no
"""

CONSOLE_LINES = """
SELECT count() AS lines, countIf(stream = 'stderr') AS stderr
FROM logs FINAL
WHERE project = {project:String} AND run_id = {run_id:String}
"""

# The last traceback a run's stderr holds: the lines from its last "Traceback (most recent call
# last):" on (at most 200), for the run page of a failed run.
TRACEBACK = """
WITH (SELECT max(tuple(ts, line_no)) FROM logs FINAL
      WHERE project = {project:String} AND run_id = {run_id:String} AND stream = 'stderr'
        AND startsWith(text, 'Traceback (most recent call last)')) AS start
SELECT text
FROM logs FINAL
WHERE project = {project:String} AND run_id = {run_id:String} AND stream = 'stderr'
  AND start IS NOT NULL AND tuple(ts, line_no) >= start
ORDER BY ts, line_no
LIMIT 200
"""

# Per system key and device: the mean, max and last value the monitor sampled for one run.
SYSTEM_SUMMARY = """
SELECT key, toString(device) AS device, avg(value) AS mean, max(value) AS max,
       argMax(value, ts) AS last, count() AS samples
FROM system_metrics
WHERE project = {project:String} AND run_id = {run_id:String} AND isFinite(value)
GROUP BY key, device
ORDER BY key, device
"""

# Which of the artifact tables (another part of Pulse's schema, migrations 0100-0109) this store has.
ARTIFACT_TABLES = """
SELECT name FROM system.tables
WHERE database = currentDatabase() AND name IN ('artifact_versions', 'artifact_usage')
"""

# The artifact versions a run logged (output) or used (input).
RUN_ARTIFACTS = """
SELECT toString(u.direction) AS direction, u.project AS artifact_project, u.name AS name, u.version AS version,
       toString(v.type) AS type, v.size AS size, v.file_count AS files, v.digest AS digest, v.created_at AS created_at
FROM (SELECT * FROM artifact_usage FINAL WHERE run_project = {project:String} AND run_id = {run_id:String}) AS u
LEFT JOIN (SELECT project, name, version, type, size, file_count, digest, created_at FROM artifact_versions FINAL)
    AS v ON u.project = v.project AND u.name = v.name AND u.version = v.version
ORDER BY direction DESC, name, version
LIMIT 500
"""

RUNS_BY_ID = f"""
SELECT {RUN_COLUMNS}
FROM runs FINAL
WHERE project = {{project:String}} AND run_id IN {{run_ids:Array(String)}}
ORDER BY created_at DESC, run_id
"""

# -- scalar metrics -----------------------------------------------------------------------------------

METRIC_KEYS = """
SELECT DISTINCT key
FROM metrics
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
ORDER BY key
"""

# How far each run has got: its last step and how many points it logged (all keys).
RUN_PROGRESS = """
SELECT run_id, max(step) AS last_step, count() AS points
FROM metrics
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
GROUP BY run_id
ORDER BY run_id
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

PROJECTIONS = """
SELECT name FROM system.projections WHERE database = currentDatabase() AND table = 'metrics'
"""

SERIES_BOUNDS = """
SELECT run_id, key, min(step) AS first_step, max(step) AS last_step
FROM metrics
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key IN {keys:Array(String)}
GROUP BY run_id, key
"""

# From points: series named by `run_id <US> key` in {series}, each with its first step and bucket
# width at the same position of {firsts} and {widths} (the ingest refuses control characters such as
# US, 0x1F, in ids and keys).
SERIES = """
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
SERIES_CHUNKED = """
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

SYSTEM_KEYS = """
SELECT key, groupUniqArray(toString(device)) AS devices, groupUniqArray(toString(host)) AS hosts
FROM system_metrics
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
GROUP BY key
ORDER BY key
"""

# As SERIES, over sample time (milliseconds) instead of steps.
SYSTEM_SERIES = """
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

HISTOGRAM_KEYS = """
SELECT key, count() AS rows, min(step) AS first_step, max(step) AS last_step, sum(nonfinite) AS nonfinite_total,
       minIf(step, nonfinite > 0) AS first_nonfinite_step
FROM histograms
WHERE project = {project:String} AND run_id = {run_id:String}
GROUP BY key
ORDER BY key
"""

# At most {steps} histograms per key, evenly spread over the run: the last one of each step bucket.
HISTOGRAMS = """
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

MODEL_GRAPH = """
SELECT argMax(graph, ts) AS graph
FROM model_graphs
WHERE project = {project:String} AND run_id = {run_id:String}
"""

ALERTS = """
SELECT run_id, ts, toString(level) AS level, title, text
FROM alerts FINAL
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
ORDER BY ts DESC
LIMIT {limit:UInt32}
"""

# -- media --------------------------------------------------------------------------------------------

MEDIA_KEYS = """
SELECT key, toString(any(kind)) AS kind, count() AS items, groupUniqArray(step) AS steps,
       groupUniqArray(run_id) AS runs
FROM media FINAL
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
GROUP BY key
ORDER BY key
"""

# The histograms a user logged (emitter.Histogram), not watch()'s gradients/ and parameters/.
USER_HISTOGRAM_KEYS = """
SELECT key, groupUniqArray(step) AS steps, groupUniqArray(run_id) AS runs
FROM histograms
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
  AND NOT startsWith(key, 'gradients/') AND NOT startsWith(key, 'parameters/')
GROUP BY key
ORDER BY key
"""

# Each run's histogram of `key` at the last step at or before {step}.
HISTOGRAMS_AT = """
SELECT run_id, max(h.step) AS at_step, argMax(bucket_edges, h.step) AS edges,
       argMax(bucket_counts, h.step) AS counts
FROM histograms AS h
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key = {key:String}
  AND h.step <= {step:Int64}
GROUP BY run_id
"""

MEDIA = """
SELECT step, idx, toString(kind) AS kind, uri, replaceAll(toString(sha256), char(0), '') AS sha256,
       toString(mime) AS mime, width, height, caption
FROM media FINAL
WHERE project = {project:String} AND run_id = {run_id:String} AND key = {key:String} AND step = {step:Int64}
ORDER BY idx
LIMIT 500
"""

# What each run logged under `key` at the last step at or before {step}: comparing runs at one step.
MEDIA_AT = """
SELECT run_id, step, idx, toString(kind) AS kind, uri, replaceAll(toString(sha256), char(0), '') AS sha256,
       toString(mime) AS mime, width, height, caption
FROM media FINAL
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key = {key:String}
  AND (run_id, step) IN (
      SELECT run_id, max(step) FROM media
      WHERE project = {project:String} AND run_id IN {run_ids:Array(String)} AND key = {key:String}
        AND step <= {step:Int64}
      GROUP BY run_id)
ORDER BY run_id, idx
LIMIT 2000
"""

# -- sweeps -------------------------------------------------------------------------------------------

# Every sweep of a project: registered ones (the `sweeps` table) and any that only runs name, with
# how their trials stand.
SWEEPS = """
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
    WHERE project = {project:String} AND sweep_id != '' AND NOT deleted
    GROUP BY sweep_id
) AS r ON s.sweep_id = r.sweep_id
ORDER BY greatest(s.created_at, r.first_run) DESC, sweep_id
"""

SWEEP_RUNS = f"""
SELECT {RUN_COLUMNS}
FROM runs FINAL
WHERE project = {{project:String}} AND sweep_id = {{sweep_id:String}} AND NOT deleted
ORDER BY created_at, run_id
LIMIT 20000
"""

# -- SQL console ---------------------------------------------------------------------------------------

SCHEMA = """
SELECT table, name AS column, type
FROM system.columns
WHERE database = currentDatabase() AND table NOT LIKE '.%'
ORDER BY table, position
"""


# == artifacts and rich media (the Artifacts page, dashboard/artifacts.py; media cells, dashboard/media_render.py)

# A project's artifacts, newest first: each with its latest version's type, size and file count.
ARTIFACTS = """
SELECT name, argMax(toString(type), version) AS type, count() AS versions, max(version) AS latest,
       argMax(size, version) AS size, argMax(file_count, version) AS files,
       argMax(description, version) AS description, max(created_at) AS updated_at
FROM artifact_versions FINAL
WHERE project = {project:String}
GROUP BY name
ORDER BY updated_at DESC, name
LIMIT 5000
"""

# Every version of one artifact, newest first, with its aliases and the name of the run that logged it.
ARTIFACT_VERSIONS = """
SELECT v.version AS version, toString(v.type) AS type, v.digest AS digest, v.description AS description,
       v.metadata AS metadata, v.size AS size, v.file_count AS files, v.created_by_run AS created_by_run,
       r.run_name AS run_name, v.created_at AS created_at, a.aliases AS aliases
FROM (SELECT version, type, digest, description, metadata, size, file_count, created_by_run, created_at
      FROM artifact_versions FINAL WHERE project = {project:String} AND name = {name:String}) AS v
LEFT JOIN (SELECT version, arraySort(groupArray(alias)) AS aliases
           FROM artifact_aliases FINAL WHERE project = {project:String} AND name = {name:String}
           GROUP BY version) AS a ON a.version = v.version
LEFT JOIN (SELECT run_id, name AS run_name FROM runs FINAL WHERE project = {project:String}) AS r
    ON r.run_id = v.created_by_run
ORDER BY version DESC
LIMIT 10000
"""

# One version's manifest: its files (a reference has no sha256 and keeps its URI), by path.
ARTIFACT_FILES = """
SELECT path, sha256, size, ref_uri, ref_digest
FROM artifact_files FINAL
WHERE project = {project:String} AND name = {name:String} AND version = {version:UInt32}
ORDER BY path
LIMIT {limit:UInt32}
"""

# Lineage around one artifact: every use (`input`) and log (`output`) of its versions, and, one hop
# further, the other artifact versions those runs used and logged (not their run-files), with the
# runs' names and states.
ARTIFACT_LINEAGE = """
SELECT u.project AS project, u.name AS name, u.version AS version, toString(u.direction) AS direction,
       toString(u.run_project) AS run_project, u.run_id AS run_id, r.run_name AS run_name, r.state AS state,
       v.type AS type
FROM (SELECT project, name, version, direction, run_project, run_id FROM artifact_usage FINAL
      WHERE (run_project, run_id) IN (SELECT run_project, run_id FROM artifact_usage FINAL
                                      WHERE project = {project:String} AND name = {name:String})) AS u
LEFT JOIN (SELECT project, name, version, toString(type) AS type FROM artifact_versions FINAL) AS v
    ON v.project = u.project AND v.name = u.name AND v.version = u.version
LEFT JOIN (SELECT project, run_id, name AS run_name, toString(state) AS state FROM runs FINAL
           WHERE (project, run_id) IN (SELECT run_project, run_id FROM artifact_usage FINAL
                                       WHERE project = {project:String} AND name = {name:String})) AS r
    ON r.project = u.run_project AND r.run_id = u.run_id
WHERE (u.project = {project:String} AND u.name = {name:String}) OR v.type != 'run-files'
ORDER BY u.project, u.name, u.version, direction DESC, run_name
LIMIT {limit:UInt32}
"""

# Where the media cells of one logged table are: their rows under the table's cell key
# (pulse/media_schema.py cell_key), one per sha256.
MEDIA_CELLS = """
SELECT replaceAll(toString(sha256), char(0), '') AS sha, uri, toString(mime) AS mime
FROM media
WHERE project = {project:String} AND run_id = {run_id:String} AND key = {key:String}
  AND replaceAll(toString(sha256), char(0), '') IN {shas:Array(String)}
LIMIT 1 BY sha
"""
