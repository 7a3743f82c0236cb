"""`pulse sync`: upload runs left in the spool (offline mode, an unreachable server, a kill)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from pathlib import Path

from .batcher import MAX_BATCH_VALUES, read_overflow
from .encode import Encoder
from .settings import Settings
from .spool import OVERFLOW, Spool, SpoolBusy, spooled_streams
from .transport import Transport

log = logging.getLogger("pulse")


@dataclass
class SyncResult:
    directory: Path
    batches: int
    uploaded: bool
    reason: str = ""


def sync(root: Path | None = None, server: str | None = None, timeout: float = 120.0) -> list[SyncResult]:
    """Upload every spooled stream under `root` (default PULSE_DIR); delete what the server acknowledged."""
    settings = Settings.resolve(server=server, dir=str(root) if root else None)
    results = []
    for directory in spooled_streams(settings.dir):
        try:
            spool = Spool(directory)
        except SpoolBusy as exc:
            results.append(SyncResult(directory, 0, False, str(exc)))
            continue
        # Records a killed trainer had spilled past its queue bound were never encoded: they become
        # batches of a stream of their own, uploaded after this one (which holds the run's start).
        overflow = respool_overflow(directory)
        results.append(_upload(spool, settings, timeout))
        if overflow is not None:
            results.append(_upload(Spool(overflow), settings, timeout))
    return results


def respool_overflow(directory: Path) -> Path | None:
    """Encode `directory`'s overflow file into a new stream's spool beside it; that stream's directory."""
    path = directory / OVERFLOW
    if not path.exists():
        return None
    project, run_id, records = read_overflow(path.read_bytes())
    if not records:
        path.unlink()
        return None
    # Named after its origin, so it sorts right after it: a later sync, if this one is cut short,
    # still uploads the origin (which holds the run's start) first.
    stream_id = f"{directory.name}.spilled-{secrets.token_hex(3)}"
    spool = Spool(directory.parent / stream_id)
    encoder = Encoder(project, run_id, stream_id)
    chunk, values = [], 0
    for record in records:
        chunk.append(record)
        values += len(record[2]) if len(record) == 3 else 1
        if values >= MAX_BATCH_VALUES:
            spool.append(*encoder.encode(chunk))
            chunk, values = [], 0
    if chunk:
        spool.append(*encoder.encode(chunk))
    spool.close(remove_if_empty=True)
    path.unlink()  # its records are in the new spool now (twice, if this is cut short: stored once)
    log.info("pulse: %d records of %s spilled past the queue bound are in stream %s", len(records), run_id,
             stream_id)
    return directory.parent / stream_id


def _upload(spool: Spool, settings: Settings, timeout: float) -> SyncResult:
    """Send a stream's spooled batches; delete what the server acknowledged."""
    directory, batches = spool.directory, spool.pending
    transport = Transport(spool, settings.server, api_key=settings.api_key, tls_ca=settings.tls_ca, replay=True,
                          on_rejection=lambda r: log.warning("pulse: the server rejected %s: %s", r.what, r.reason))
    transport.start()
    uploaded = transport.close(timeout)
    spool.close(remove_if_empty=True)
    return SyncResult(directory, batches, uploaded,
                      "" if uploaded else f"not acknowledged in {timeout:g} s: {transport.last_error or 'no answer'}")
