-- API keys, stored hashed (sha256 of a 256-bit random secret). Read with FINAL.
-- project = '' means every project; admin keys manage keys.
CREATE TABLE IF NOT EXISTS api_keys
(
    key_id     String,
    secret_sha256 String,
    project    String,
    read_only  UInt8,
    admin      UInt8,
    revoked    UInt8,
    note       String,
    created_at DateTime64(6, 'UTC'),
    updated_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY key_id
