"""`pulse sync`: upload runs left in the spool (offline mode, an unreachable server, a kill).

It uploads every intact record, skips damaged bytes (saying which file, where,
how much), moves files with damage to `PULSE_DIR/quarantine/` instead of
deleting them, leaves a spool another process holds alone, and never loads a
pickle (`overflow.pkl` of older releases). A batch the server refuses as a
whole is set aside in `PULSE_DIR/rejected/` (emitter/rejected.py) and named in
the result: not everything was stored, so `pulse sync` fails.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from .overflow import LEGACY_NOTE, TAKING
from .records import Damage
from .settings import Settings
from .spool import LEGACY_OVERFLOW, OVERFLOW, Spool, SpoolBusy, spooled_streams
from .transport import RefusedBatch, Transport

log = logging.getLogger("pulse")


@dataclass
class SyncResult:
    directory: Path
    batches: int
    uploaded: bool
    reason: str = ""
    busy: bool = False  # another process holds the spool: skipped, not failed
    damage: list[tuple[str, Damage]] = field(default_factory=list)  # (file, what was skipped there)
    tail_file: str = ""  # a record cut short at the end of this file is what a kill mid-write leaves
    quarantined: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # data left on disk, not uploaded, and why
    unit: str = "batches"  # what `batches` counts: a stream's batches, or an artifact job's files
    rejected: list[RefusedBatch] = field(default_factory=list)  # refused whole: set aside, not stored

    @property
    def corrupt(self) -> list[tuple[str, Damage]]:
        """Damage that is not the expected aftermath of a kill: what makes `pulse sync` fail."""
        return [(name, d) for name, d in self.damage if not (d.kind == "cut short" and name == self.tail_file)]

    @property
    def failed(self) -> bool:
        return (not self.uploaded and not self.busy) or bool(self.corrupt) or bool(self.notes) or bool(self.rejected)


def sync(root: Path | None = None, server: str | None = None, timeout: float = 120.0) -> list[SyncResult]:
    """Upload every spooled stream under `root` (default PULSE_DIR); delete what the server acknowledged."""
    settings = Settings.resolve(server=server, dir=str(root) if root else None)
    results = []
    for directory in spooled_streams(settings.dir):
        spool = _open(directory)
        if isinstance(spool, SyncResult):
            results.append(spool)
            continue
        notes = [f"{LEGACY_NOTE} ({directory / LEGACY_OVERFLOW})"] if (directory / LEGACY_OVERFLOW).exists() else []
        result = _upload(spool, settings, timeout, notes)
        # Records a killed trainer had spilled past its queue bound: a stream of their own, moved out
        # while we still hold this spool's lock and only once this stream (which holds the run's start)
        # is acknowledged, so no other sync can upload them before the server knows the run.
        spilled = None
        if result.uploaded:
            try:
                spilled = respool_overflow(directory)
            except OSError as exc:
                notes.append(f"could not move the overflow files of {directory} into a stream of their own: {exc}")
        _close(spool, result)
        results.append(result)
        if spilled is not None:
            opened = _open(spilled)
            if isinstance(opened, Spool):
                opened = _close(opened, _upload(opened, settings, timeout, []))
            results.append(opened)
    return results + _sync_artifacts(settings, timeout)


def _sync_artifacts(settings: Settings, timeout: float) -> list[SyncResult]:
    """Artifacts logged offline or left by a finish() timeout (emitter/run_artifacts.py), after the runs."""
    from .run_artifacts import sync_artifacts

    return [SyncResult(job.directory, job.files, job.uploaded, job.reason or job.version, busy=job.busy,
                       unit="artifact files")
            for job in sync_artifacts(settings.dir.resolve(), settings.server, settings.api_key, settings.tls_ca,
                                      timeout)]


def _open(directory: Path) -> Spool | SyncResult:
    try:
        return Spool(directory, create=False)
    except SpoolBusy:
        return SyncResult(directory, 0, False, "in use by another process, skipped", busy=True)
    except FileNotFoundError:  # another `pulse sync` uploaded it and removed it meanwhile
        return SyncResult(directory, 0, True, "already uploaded by another process", busy=True)


def respool_overflow(directory: Path) -> Path | None:
    """Move `directory`'s overflow files into a new stream directory beside it; that directory.

    Each file already is a segment of the spilled rows' own stream (`overflow.py`), so it moves
    as it is: nothing is copied or decoded. A file a kill left while the sender was taking it
    (`TAKING`; its rows may be in the spool too, which storage collapses) holds the stream's
    earlier seqs, so it becomes the first segment. The new directory is named after its origin,
    so it sorts right after it: a later sync, if this one is cut short, still uploads the origin
    (which holds the run's start) first.
    """
    files = [path for path in (directory / TAKING, directory / OVERFLOW) if path.exists()]
    if not files:
        return None
    target = directory.parent / f"{directory.name}.spilled-{secrets.token_hex(3)}"
    # An empty directory is no stream to `spooled_streams`, so no other sync opens it before a file
    # is in; one that opens it between the two moves sends the earlier seqs, and leaves the later.
    target.mkdir()
    for segment, path in enumerate(files, 1):
        os.replace(path, target / f"{segment:08d}.wal")
    log.info("pulse: records of %s spilled past the queue bound are in stream %s", directory.name, target.name)
    return target


def _upload(spool: Spool, settings: Settings, timeout: float, notes: list[str]) -> SyncResult:
    """Send a stream's spooled batches; the server's acks delete them."""
    directory, batches = spool.directory, spool.pending
    transport = Transport(spool, settings.server, api_key=settings.api_key, tls_ca=settings.tls_ca, replay=True,
                          on_rejection=lambda r: log.warning("pulse: the server rejected %s: %s", r.what, r.reason))
    transport.start()
    uploaded = transport.close(timeout)
    return SyncResult(directory, batches, uploaded, "" if uploaded else _why_not(transport, timeout), notes=notes,
                      rejected=list(transport.refused_batches))


def _why_not(transport: Transport, timeout: float) -> str:
    """Why a stream's batches are still on disk: refused (at once, and for as long as the other writer
    lives), or not acknowledged within `timeout`."""
    if transport.refused:
        return (f"refused by the server: {transport.refused}; the spool is kept: run `pulse sync` again once "
                "that process has ended")
    return f"not acknowledged in {timeout:g} s: {transport.last_error or 'no answer'}"


def _close(spool: Spool, result: SyncResult) -> SyncResult:
    """Close the spool (removing what is acknowledged, quarantining what is damaged); say what it skipped."""
    spool.close(remove_if_empty=True)
    result.damage, result.tail_file, result.quarantined = list(spool.damage), spool.tail_file, list(spool.quarantined)
    return result
