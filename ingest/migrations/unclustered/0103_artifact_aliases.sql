-- Aliases (`latest`, and users' own: `best`, `prod`): one row per (project, name, alias), the
-- newest wins, so an alias points to exactly one version; read with FINAL. A move is one
-- insert of all the aliases that move, stamped with one strictly increasing updated_at.
CREATE TABLE IF NOT EXISTS artifact_aliases
(
    project    LowCardinality(String),
    name       String,
    alias      String,
    version    UInt32,
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (project, name, alias)
