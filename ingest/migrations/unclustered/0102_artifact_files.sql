-- An artifact version's manifest: one row per file. `sha256` names the blob in the blob
-- store (the same one as media's), "" for a reference; a reference keeps its URI
-- (s3://, file://) and, when known, its ETag or sha256 in `ref_digest`; it is not uploaded.
CREATE TABLE IF NOT EXISTS artifact_files
(
    project    LowCardinality(String),
    name       String,
    version    UInt32,
    path       String,
    sha256     String,
    size       UInt64,
    ref_uri    String,
    ref_digest String
)
ENGINE = ReplacingMergeTree
ORDER BY (project, name, version, path)
