-- Lineage: which run produced each artifact version (`output`) and which runs used it
-- (`input`). `project` is the artifact's, `run_project` the run's (a run may use another
-- project's artifact). A repeated log or use collapses to one row.
CREATE TABLE IF NOT EXISTS artifact_usage
(
    project     LowCardinality(String),
    name        String,
    version     UInt32,
    run_project LowCardinality(String),
    run_id      String,
    direction   LowCardinality(String),
    ts          DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (project, name, version, direction, run_project, run_id)
