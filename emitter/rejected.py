"""Batches the server refused as a whole: kept on disk for inspection, never resent, never lost.

A batch the server refuses whole (`INVALID_ARGUMENT`: too large, malformed) would be refused
again on every resend, and a stream resends from its first unacknowledged batch, so leaving it
in the spool would block the run for good. A batch acknowledged with a whole-batch rejection
("unknown run": the server refused the run's start) is refused too, and trimming it from the
spool would lose it. Either way its bytes move here, beside the spool, and the stream moves on:

    PULSE_DIR/rejected/<run>.<stream>/<seq>.pb     the Batch, as sent (protobuf)
    PULSE_DIR/rejected/<run>.<stream>/<seq>.txt    why the server refused it

Example:
    pulse.v1.telemetry_pb2.Batch.FromString(Path(".pulse/rejected/x.y/00000003.pb").read_bytes())
"""

from __future__ import annotations

import os
from pathlib import Path

REJECTED = "rejected"


def rejected_dir(spool_directory: Path) -> Path:
    """Where the refused batches of the stream spooled in `spool_directory` go.

    `PULSE_DIR/spool/<stream>` -> `PULSE_DIR/rejected/<stream>`: outside the spool, which is
    deleted once empty and which `pulse sync` uploads.
    """
    return spool_directory.parent.parent / REJECTED / spool_directory.name


def set_aside(spool_directory: Path, seq: int, data: bytes, reason: str) -> Path:
    """Write a refused batch and its reason beside the spool; the path of the batch's file."""
    directory = rejected_dir(spool_directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{seq:08d}.pb"
    _write(directory / f"{seq:08d}.txt", reason.encode("utf-8", "replace") + b"\n")
    _write(path, data)
    return path


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a temporary file, flushed to disk, then renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
