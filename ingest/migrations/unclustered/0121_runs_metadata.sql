-- What `emitter.init()` captured about the run's process (RunStart.metadata_json), as JSON text:
-- {"host", "os", "python", "executable", "command": [argv...], "cwd", "pid", "user",
--  "git": {"commit", "dirty", "branch", "remote"}, "packages": {"torch": "2.13.0", ...}}.
-- '{}' for runs started by emitters older than this column.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS metadata String DEFAULT '{}' CODEC(ZSTD)
