-- Media metadata; the bytes live in a content-addressed blob store (uri).
CREATE TABLE IF NOT EXISTS media
(
    project LowCardinality(String),
    run_id  String,
    key     LowCardinality(String),
    step    Int64,
    idx     UInt32,
    kind    LowCardinality(String),
    uri     String,
    sha256  FixedString(64),
    mime    LowCardinality(String),
    width   UInt32,
    height  UInt32,
    caption String
)
ENGINE = ReplacingMergeTree
ORDER BY (project, run_id, key, step, idx)
