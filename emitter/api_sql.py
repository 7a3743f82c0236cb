"""All of the read API's SQL (emitter/api.py), as constants with bound parameters only.

The runs query has one slot, /*WHERE*/ and /*ORDER*/, that emitter/api_filters.py fills with its
own fragments; users' values are parameters there too. History is downsampled in ClickHouse as
the dashboard's charts are (dashboard/queries.py, which the emitter must not import): each key's
steps cut into buckets of equal width, each bucket keeping its minimum and its maximum as the
points they are, so spikes survive any sample count.
"""

from __future__ import annotations

# The emitter writes NaN and Infinity into summaries (Python's json does), which ClickHouse's JSON
# functions refuse for the whole document; as values they become null for filtering and ordering.
SUMMARY_JSON = r"replaceRegexpAll(summary, '([:\\[,]\\s*)-?(NaN|Infinity)(\\s*[,}\\]])', '\\1null\\3')"

PROJECT_HAS_RUNS = "SELECT count() AS n FROM runs WHERE project = {project:String}"

RUNS_PAGE = f"""
SELECT project, run_id, name, `group`, job_type, tags, notes, sweep_id, state, exit_code, error, host,
       created_at, updated_at, heartbeat_at, config, summary, count() OVER () AS total
FROM (
    SELECT project, run_id, name, `group`, toString(job_type) AS job_type, tags, notes, sweep_id,
           toString(state) AS state, exit_code, error, host, created_at, updated_at, heartbeat_at, config,
           summary, {SUMMARY_JSON} AS summary_json
    FROM runs FINAL
    WHERE project = {{project:String}}
)
WHERE /*WHERE*/
ORDER BY /*ORDER*/
LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
"""

HISTORY_BOUNDS = """
SELECT key, min(step) AS first, max(step) AS last, uniqExact(step) AS steps
FROM metrics
WHERE project = {project:String} AND run_id = {run_id:String}
  AND (empty({keys:Array(String)}) OR key IN {keys:Array(String)})
GROUP BY key
"""

# Every point of the keys in {keys} (short series, shown whole).
HISTORY_POINTS = """
SELECT toString(key) AS key, step, value
FROM metrics FINAL
WHERE project = {project:String} AND run_id = {run_id:String} AND key IN {keys:Array(String)}
ORDER BY step, key
"""

# Per key (at position i of {keys}, with its first step and bucket width at i of {firsts}, {widths}):
# the points holding each bucket's smallest and largest finite value. NaN and +-Inf points are left
# out of the downsampled view (scan_history returns them).
HISTORY_BUCKETS = """
SELECT key, min_step, min_value, max_step, max_value
FROM (
    SELECT toString(key) AS key, indexOf({keys:Array(String)}, toString(key)) AS i,
           intDiv(step - {firsts:Array(Int64)}[i], greatest({widths:Array(Int64)}[i], 1)) AS bucket,
           argMinIf(step, value, isFinite(value)) AS min_step, minIfOrNull(value, isFinite(value)) AS min_value,
           argMaxIf(step, value, isFinite(value)) AS max_step, maxIfOrNull(value, isFinite(value)) AS max_value
    FROM metrics
    WHERE project = {project:String} AND run_id = {run_id:String} AND key IN {keys:Array(String)}
    GROUP BY key, i, bucket
)
WHERE min_value IS NOT NULL
ORDER BY key, bucket
"""

# One page of scan_history: the points of the next {steps} distinct steps from {lo}.
SCAN_PAGE = """
SELECT step, toString(key) AS key, value, toUnixTimestamp64Micro(ts) AS ts_us
FROM metrics FINAL
WHERE project = {project:String} AND run_id = {run_id:String}
  AND (empty({keys:Array(String)}) OR key IN {keys:Array(String)})
  AND step >= {lo:Int64} AND step <= {hi:Int64}
  AND step <= (
      SELECT max(step) FROM (
          SELECT DISTINCT step FROM metrics
          WHERE project = {project:String} AND run_id = {run_id:String}
            AND (empty({keys:Array(String)}) OR key IN {keys:Array(String)})
            AND step >= {lo:Int64} AND step <= {hi:Int64}
          ORDER BY step
          LIMIT {steps:UInt32}))
ORDER BY step, key
"""

# Run files (emitter.save): the newest version of the run's `run-<id>-files` artifact.
RUN_FILES = """
SELECT f.path AS path, f.size AS size, f.sha256 AS sha256, f.version AS version
FROM artifact_files AS f FINAL
WHERE f.project = {project:String} AND f.name = {name:String}
  AND f.version = (SELECT max(version) FROM artifact_versions FINAL
                   WHERE project = {project:String} AND name = {name:String})
ORDER BY path
"""

# The artifact versions a run logged (`output`) or used (`input`); its saved files (the `run-files`
# artifact) are `files()`, as in W&B.
RUN_ARTIFACTS = """
SELECT u.project AS project, u.name AS name, u.version AS version
FROM (SELECT project, name, version, ts FROM artifact_usage FINAL
      WHERE run_project = {project:String} AND run_id = {run_id:String} AND direction = {direction:String}) AS u
INNER JOIN (SELECT project, name, version, type FROM artifact_versions FINAL) AS v
    ON u.project = v.project AND u.name = v.name AND u.version = v.version
WHERE v.type != 'run-files'
ORDER BY u.ts, u.project, u.name, u.version
"""
