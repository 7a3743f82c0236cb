-- Which blobs each project has uploaded (not a public table: users' SQL cannot read it).
-- The blob store is shared by every project, but a project may name a blob in a manifest,
-- skip its upload, or download it only once it has sent those bytes itself: no key learns
-- what another project stores, not even whether it stores it.
CREATE TABLE IF NOT EXISTS artifact_blobs
(
    project     LowCardinality(String),
    sha256      String,
    size        UInt64,
    uploaded_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (project, sha256)
