-- Per-run, per-key summaries of 256-step chunks, kept by ClickHouse as each part is written, so a
-- chart over millions of points reads thousands of chunk rows instead (dashboard/data.py uses it
-- when system.projections lists it). It costs about a fifth more CPU per insert; see
-- bench/dashboard_queries.py for what it buys (780 ms -> 60 ms for 8 runs x 1M points).
-- 'ignore': merges keep merging the chunk aggregates as they are instead of rebuilding them from
-- the rows ('rebuild' took the ingest's peak memory from 650 MB to 1 GB under bench.load). A
-- retried point the table collapses stays counted twice in its chunk's `count()`/NaN counts; min,
-- max and last, what charts draw, are the same either way.
ALTER TABLE metrics MODIFY SETTING deduplicate_merge_projection_mode = 'ignore';

ALTER TABLE metrics ADD PROJECTION IF NOT EXISTS step_chunks
(
    SELECT project, run_id, key, intDiv(step, 256), min(step), max(step), max(ts),
           minIf(value, isFinite(value)), maxIf(value, isFinite(value)), argMaxIf(value, step, isFinite(value)),
           countIf(isNaN(value)), countIf(value = inf), countIf(value = -inf), count()
    GROUP BY project, run_id, key, intDiv(step, 256)
)
