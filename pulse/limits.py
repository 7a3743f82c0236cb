"""The limits of the wire contract: one rule per function, used by the ingest and by the emitter.

The ingest (ingest/validate.py) refuses what breaks these rules; the emitter checks the same
rules at the call (`init()` raises, `log()` drops the offending keys with a warning), so what a
trainer hands over is either refused there, loudly, or stored. Each `*_problem` function returns
why a value breaks its rule, naming the field, the limit and the value's size, or None.

Standard library only: both `emitter` and `ingest` import this.

Example:
    from pulse.limits import name_problem
    name_problem("x" * 300, "name")   # 'name is 300 bytes long; the limit is 256'
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 256  # project, run id and stream id on the wire; run name, group, job_type, each tag
MAX_KEY_BYTES = 512  # metric keys, system keys and devices, histogram and media keys
MAX_JSON_BYTES = 4 << 20  # config and summary documents (JSON text)
MAX_NOTES_BYTES = 1 << 20  # a run's notes (free text: newlines are fine)
MAX_TAGS = 1000
# Run ids name a spool directory (PULSE_DIR/spool/<id>.<stream>), so they are held to an
# allowlist; 64 characters is W&B's limit, and the byte bound keeps `<id>.<12 hex>` a valid
# stream id (MAX_NAME_BYTES) whatever the script.
MAX_RUN_ID_CHARS = 64
MAX_RUN_ID_BYTES = 128
RUN_ID_PUNCTUATION = frozenset("-_.")
MAX_STEP = (1 << 63) - 1  # steps are int64 on the wire, and never negative
MAX_BATCH_BYTES = 32 << 20  # the largest serialized Batch the ingest takes
# The emitter's batches aim under this many bytes (estimated from the records, before encoding).
# Half of what the server says it takes leaves room for the estimate's error; and it is capped,
# since a larger batch is no faster to store, only slower to resend.
BATCH_TARGET_BYTES = 4 << 20
# Control characters, and lone surrogates (which are not UTF-8, so protobuf cannot send them).
_UNSENDABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def utf8_size(value: str) -> int:
    return len(value.encode("utf-8", "surrogatepass"))


def name_problem(value: str, what: str, limit: int = MAX_NAME_BYTES) -> str | None:
    """Why `value` is not acceptable as a name or key (empty, too long, control characters), or None."""
    if not isinstance(value, str):
        return f"{what} must be a string, not {type(value).__name__}"
    if not value:
        return f"{what} is empty"
    # A character is at most 4 bytes of UTF-8, so short names need no encoding to measure.
    if len(value) * 4 > limit and (size := utf8_size(value)) > limit:
        return f"{what} is {size} bytes long; the limit is {limit}"
    if found := _UNSENDABLE.search(value):
        kind = "an unpaired surrogate" if found.group() >= "\ud800" else "control characters"
        return f"{what} contains {kind} ({found.group()!r} at position {found.start()} of {_clip(value)!r})"
    return None


def key_problem(key: object) -> str | None:
    """Why `key` is not acceptable as a metric key, or None."""
    return name_problem(key, "key", MAX_KEY_BYTES)  # type: ignore[arg-type]


def run_id_problem(run_id: object) -> str | None:
    """Why `run_id` is not acceptable as a run id, or None.

    An allowlist: letters and digits of any script (so `café`, `实验`), combining marks, and
    `-`, `_`, `.`, not starting with `.`; at most 64 characters and 128 bytes. So no id can
    name a path outside PULSE_DIR (`../x`, `a/b`) or a hidden file.
    """
    if not isinstance(run_id, str):
        return f"run id must be a string, not {type(run_id).__name__}"
    if not run_id:
        return "run id is empty"
    size = utf8_size(run_id)
    if len(run_id) > MAX_RUN_ID_CHARS or size > MAX_RUN_ID_BYTES:
        return (f"run id {_clip(run_id)!r} is {len(run_id)} characters ({size} bytes) long; the limit is "
                f"{MAX_RUN_ID_CHARS} characters and {MAX_RUN_ID_BYTES} bytes")
    for ch in run_id:
        if not (ch.isalnum() or ch in RUN_ID_PUNCTUATION or unicodedata.category(ch).startswith("M")):
            return (f"run id {run_id!r} contains {ch!r}; run ids may hold only letters, digits, "
                    "'-', '_' and '.'")
    if run_id[0] == ".":
        return f"run id {run_id!r} starts with '.'; run ids start with a letter, digit, '-' or '_'"
    return None


def tags_problem(tags: object) -> str | None:
    """Why `tags` is not acceptable as a run's tags (a list of names), or None."""
    if not isinstance(tags, (list, tuple)):
        return f"tags must be a list of strings, not {type(tags).__name__}"
    if len(tags) > MAX_TAGS:
        return f"tags has {len(tags)} entries; the limit is {MAX_TAGS}"
    for i, tag in enumerate(tags):
        if problem := name_problem(tag, f"tags[{i}]"):
            return problem
    return None


def notes_problem(notes: object) -> str | None:
    """Why `notes` is not acceptable as a run's notes, or None (any text up to 1 MiB)."""
    if not isinstance(notes, str):
        return f"notes must be a string, not {type(notes).__name__}"
    if len(notes) > MAX_NOTES_BYTES // 4 and utf8_size(notes) > MAX_NOTES_BYTES:
        return f"notes is {utf8_size(notes)} bytes long; the limit is {MAX_NOTES_BYTES}"
    return None


def json_size_problem(text: str, what: str) -> str | None:
    """Why the JSON document `text` (a config or summary) is too large, or None."""
    if len(text) > MAX_JSON_BYTES // 4 and utf8_size(text) > MAX_JSON_BYTES:
        return f"{what} is {utf8_size(text):,} bytes as JSON; the limit is {MAX_JSON_BYTES:,}"
    return None


def step_problem(step: int) -> str | None:
    """Why the int `step` is out of range, or None (steps are int64 and never negative)."""
    if step < 0:
        return f"step {step} is negative"
    if step > MAX_STEP:
        return f"step {step} is past the int64 limit ({MAX_STEP})"
    return None


def batch_budget(server_max_bytes: int = 0) -> int:
    """How many bytes the emitter aims to put in one batch, given the server's limit (0: unknown)."""
    if server_max_bytes <= 0:
        return BATCH_TARGET_BYTES
    return max(64 << 10, min(BATCH_TARGET_BYTES, server_max_bytes // 2))


def _clip(value: str, size: int = 60) -> str:
    return value if len(value) <= size else value[:size] + "..."
