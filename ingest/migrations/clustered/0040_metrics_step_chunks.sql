-- Clustered twin of unclustered/0040_metrics_step_chunks.sql: the projection lives on every
-- node's metrics_local; queries through the Distributed `metrics` use it on each shard.
ALTER TABLE metrics_local ON CLUSTER '{cluster}' MODIFY SETTING deduplicate_merge_projection_mode = 'ignore';

ALTER TABLE metrics_local ON CLUSTER '{cluster}' ADD PROJECTION IF NOT EXISTS step_chunks
(
    SELECT project, run_id, key, intDiv(step, 256), min(step), max(step), max(ts),
           minIf(value, isFinite(value)), maxIf(value, isFinite(value)), argMaxIf(value, step, isFinite(value)),
           countIf(isNaN(value)), countIf(value = inf), countIf(value = -inf), count()
    GROUP BY project, run_id, key, intDiv(step, 256)
)
