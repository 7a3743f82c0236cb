"""The spool: an on-disk log of encoded batches, written before they are sent.

Every batch the emitter encodes is appended here first; the transport reads
it back to send, and the spool forgets a batch only once the server has
acknowledged it. So whatever was not acknowledged, when the server is away,
when `finish()` times out, or when the process is killed, is on disk for
`pulse sync`.

Layout: `PULSE_DIR/spool/<run_id>.<stream_id>/NNNNNNNN.wal`, each a sequence of
checksummed records with a resync marker (`records.py`). A record is
appended whole or not at all: a write the disk refuses (full, over quota, an
I/O error) or cuts short is truncated away and counted as dropped, never
raised into the training loop. Bytes that fail their checksum are skipped
(the reader carries on at the next intact record) and the file that holds
them moves to `PULSE_DIR/quarantine/<stream>/` once its intact records are
acknowledged; it is never deleted. Beside the segments, `overflow.wal` holds
records spilled past the emitter's queue bound (`overflow.py`). Writes go
straight to the file descriptor, unbuffered, so a forked child has no
buffered bytes of ours to flush twice.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import logging
import os
import shutil
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .records import FIELDS, HEADER_BYTES, MAGIC, Damage, frame, scan

log = logging.getLogger("pulse")
SEGMENT_BYTES = 16 << 20
OVERFLOW = "overflow.wal"
LEGACY_OVERFLOW = "overflow.pkl"  # written by releases before checksummed overflow files; never loaded
REPORT_EVERY_S = 10.0


@dataclass(frozen=True)
class Entry:
    seq: int
    segment: int
    offset: int  # of the payload
    length: int
    crc: int  # of the payload


class SpoolFull(OSError):
    pass


class SpoolBusy(OSError):
    """Another live process is writing this spool."""


class SpoolWriteError(OSError):
    """The disk refused a batch (full, over quota, an I/O error): it was not written, and is counted
    in `Spool.dropped_records`. Nothing of it is left in the spool."""


class CorruptRecord(OSError):
    """A record read back from disk failed its checksum (or could not be read): it must not be sent.

    The spool has already forgotten it (so the stream goes on with the next
    batch) and keeps its segment for quarantine.
    """


class TornWrite(OSError):
    """A write failed and truncating it away failed too: the file ends in a partial record."""


def write_whole(fd: int, record: bytes, good_size: int) -> None:
    """Append all of `record` to `fd` (opened O_APPEND, `good_size` bytes long), or nothing.

    On a failed or short write the file is truncated back to `good_size` and
    the error raised; if that truncation fails too, TornWrite: the caller
    must never append to that file again.
    """
    view, written = memoryview(record), 0
    try:
        while written < len(record):
            n = os.write(fd, view[written:])
            if n <= 0:
                raise OSError(errno.ENOSPC, f"short write: {written} of {len(record)} bytes")
            written += n
    except OSError as exc:
        try:
            os.ftruncate(fd, good_size)
        except OSError as again:
            raise TornWrite(again.errno, f"{exc}; truncating the partial record failed too: {again}") from exc
        raise


class WriteFailures:
    """Writes the disk refused: counted, and reported loudly at once and every 10 s while they grow."""

    def __init__(self, what: str, unit: str) -> None:
        self.what = what
        self.unit = unit
        self.failures = 0  # writes that failed
        self.dropped = 0  # units (batches, records) they held
        self.dropped_bytes = 0
        self.dropped_points = 0  # when the writer knows them (the overflow file does)
        self.last_error = ""
        self._reported = 0  # `dropped` when last reported
        self._reported_at = 0.0

    def failed(self, exc: OSError, units: int, nbytes: int, points: int = 0) -> None:
        self.failures += 1
        self.dropped += units
        self.dropped_bytes += nbytes
        self.dropped_points += points
        self.last_error = f"{errno.errorcode.get(exc.errno or 0, type(exc).__name__)}: {exc.strerror or exc}"
        now = time.monotonic()
        if self._reported == 0 or now - self._reported_at >= REPORT_EVERY_S:
            self._reported, self._reported_at = self.dropped, now
            log.error("pulse: could not write to %s (%s): DROPPED %d %s (%d bytes) so far. The run goes on; "
                      "writes resume when the disk has room again.", self.what, self.last_error, self.dropped,
                      self.unit, self.dropped_bytes)

    def succeeded(self) -> None:
        if self._reported:
            log.warning("pulse: writes to %s resumed; %d %s (%d bytes) were dropped while the disk refused "
                        "them.", self.what, self.dropped, self.unit, self.dropped_bytes)
            self._reported = 0


class Spool:
    """The batches of one stream that the server has not acknowledged yet."""

    def __init__(self, directory: Path, max_bytes: int = 0, *, create: bool = True) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolBusy(f"spool {directory} is in use by another process") from None
        self._lock = threading.Condition()
        self._entries: list[Entry] = []  # unacknowledged, in seq order
        self._segment = 0
        self._fd = -1
        self._size = 0  # bytes in the current segment
        self._bytes = 0  # bytes in all segments on disk
        self._damaged: dict[int, list[Damage]] = {}  # segment -> what in it is not an intact record
        self.writes = WriteFailures(f"the spool {directory}", "batches")
        self.damage: list[tuple[str, Damage]] = []  # (file name, damage) found on opening or reading back
        self.quarantined: list[Path] = []
        self.tail_file = ""  # the last segment when opened: where a kill mid-write leaves a record cut short
        self.acked = 0
        self.appended = 0
        for segment in self._segments():
            try:
                data = (directory / _name(segment)).read_bytes()
                records, damage = scan(data)
            except OSError as exc:  # an I/O error: nothing of it can be sent, all of it is kept
                data, records = b"", []
                damage = [Damage(0, 0, f"unreadable ({exc.strerror or exc})", 1, 0, 0)]
            self._bytes += len(data)
            self._entries.extend(Entry(r.seq, segment, r.offset, r.length, r.crc) for r in records)
            if damage:
                self._damaged[segment] = damage
                self.damage.extend((_name(segment), d) for d in damage)
            self._segment, self.tail_file = segment, _name(segment)
        self._entries.sort(key=lambda e: e.seq)
        if self._entries:
            self.appended = self._entries[-1].seq

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def bytes_on_disk(self) -> int:
        return self._bytes

    @property
    def write_failures(self) -> int:
        """Appends the disk refused (see `dropped_records`)."""
        return self.writes.failures

    @property
    def dropped_records(self) -> int:
        """Batches that could not be written (full disk, quota, I/O error): never sent."""
        return self.writes.dropped

    def append(self, seq: int, data: bytes, force: bool = False) -> None:
        """Append a batch, whole or not at all.

        SpoolFull past `max_bytes` unless `force` (lifecycle events always fit);
        SpoolWriteError, already counted and reported, when the disk refuses it.
        """
        record = frame(seq, data)
        with self._lock:
            if self.max_bytes and not force and self._bytes + len(record) > self.max_bytes:
                raise SpoolFull(f"spool {self.directory} would exceed {self.max_bytes >> 20} MB")
            try:
                if self._fd < 0 or self._size >= SEGMENT_BYTES:
                    self._roll()
                write_whole(self._fd, record, self._size)
            except OSError as exc:
                if isinstance(exc, TornWrite):  # a partial record stays in that segment: append elsewhere
                    self._abandon_segment()
                self.writes.failed(exc, 1, len(record))
                raise SpoolWriteError(exc.errno, f"batch {seq} not written to {self.directory}: {exc}") from exc
            crc = FIELDS.unpack_from(record, len(MAGIC))[2]  # computed once, by frame()
            self._entries.append(Entry(seq, self._segment, self._size + HEADER_BYTES, len(data), crc))
            self._size += len(record)
            self._bytes += len(record)
            self.appended = seq
            self.writes.succeeded()
            self._lock.notify_all()

    def _roll(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        path = self.directory / _name(self._segment + 1)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment += 1
        self._size = 0

    def _abandon_segment(self) -> None:
        try:
            self._bytes += os.fstat(self._fd).st_size - self._size
        except OSError:
            pass
        os.close(self._fd)
        self._fd = -1

    def sync(self) -> None:
        """Flush what was appended to disk (fsync): for a caller that deletes another copy next."""
        with self._lock:
            if self._fd >= 0:
                os.fsync(self._fd)

    def after(self, seq: int, timeout: float) -> Entry | None:
        """The first unacknowledged entry with a seq above `seq`, waiting up to `timeout`."""
        with self._lock:
            self._lock.wait_for(lambda: self.appended > seq, timeout)
            i = bisect.bisect_right(self._entries, seq, key=lambda e: e.seq)
            return self._entries[i] if i < len(self._entries) else None

    def read(self, entry: Entry) -> bytes:
        """An entry's batch, checked against its checksum; CorruptRecord if it fails (never send it)."""
        try:
            with open(self.directory / _name(entry.segment), "rb") as f:
                f.seek(entry.offset)
                data = f.read(entry.length)
            problem = "" if len(data) == entry.length and zlib.crc32(data) == entry.crc else \
                "fails its checksum"
        except OSError as exc:
            problem = f"cannot be read ({exc})"
        if problem:
            self._forget_corrupt(entry, problem)
            raise CorruptRecord(f"batch {entry.seq} in {self.directory / _name(entry.segment)} {problem}; "
                                "skipped, and its file is kept for quarantine")
        return data

    def _forget_corrupt(self, entry: Entry, problem: str) -> None:
        damage = Damage(entry.offset - HEADER_BYTES, HEADER_BYTES + entry.length, "corrupt", 1, 0, 0, entry.seq)
        with self._lock:
            if entry in self._entries:
                self._entries.remove(entry)
                self._damaged.setdefault(entry.segment, []).append(damage)
                self.damage.append((_name(entry.segment), damage))
            self._lock.notify_all()
        log.error("pulse: batch %d of %s %s when read back; it is not sent", entry.seq, self.directory, problem)

    def ack(self, seq: int) -> None:
        """Forget every batch up to `seq`, retiring segments that hold nothing else."""
        with self._lock:
            if seq <= self.acked:
                return
            self.acked = seq
            del self._entries[:bisect.bisect_right(self._entries, seq, key=lambda e: e.seq)]
            self._retire()
            self._lock.notify_all()

    def _retire(self) -> None:
        """Delete (or, when damaged, quarantine) each segment without an unacknowledged batch.

        The current segment stays while anything is unacknowledged: appends go there.
        """
        live = {e.segment for e in self._entries}
        for segment in self._segments():
            if segment in live or (segment == self._segment and self._entries):
                continue
            if segment == self._segment and self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            path = self.directory / _name(segment)
            try:
                size = path.stat().st_size
                if segment in self._damaged:
                    self.quarantined.append(quarantine(path, self._damaged.pop(segment)))
                else:
                    path.unlink()
            except OSError as exc:  # kept where it is: a later sync tries again
                log.error("pulse: could not retire %s: %s", path, exc)
                continue
            self._bytes -= size

    def wait_acked(self, timeout: float) -> bool:
        return self.wait(lambda: not self._entries, timeout)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate` holds; it is checked after every append and ack."""
        with self._lock:
            return self._lock.wait_for(predicate, timeout)

    def close(self, remove_if_empty: bool = True) -> None:
        """Close; with `remove_if_empty`, retire what is acknowledged and remove the directory if
        nothing else is left in it (an overflow file, say, stays for `pulse sync`)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if remove_if_empty and self._lock_fd >= 0:
                self._retire()
                if not self._entries:
                    _remove_if_empty(self.directory)
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def abandon(self) -> None:
        """In a forked child: drop our descriptor without touching the parent's files."""
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)  # the parent's descriptor (and its flock) stay open
        self._fd = self._lock_fd = -1
        self._lock = threading.Condition()
        self._entries = []

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.wal") if p.stem.isdigit())


def _name(segment: int) -> str:
    return f"{segment:08d}.wal"


def _remove_if_empty(directory: Path) -> None:
    """Remove a stream directory holding nothing but its lock file (which we hold)."""
    try:
        if any(p.name != "lock" for p in directory.iterdir()):
            return
    except FileNotFoundError:
        return  # a concurrent `pulse sync` that had uploaded the same (acknowledged) batches removed it first
    try:
        (directory / "lock").unlink()
        directory.rmdir()
    except OSError:
        pass  # another process came in meanwhile: its business now


def quarantine(path: Path, damage: list[Damage]) -> Path:
    """Move a damaged file from `PULSE_DIR/spool/<stream>/` to `PULSE_DIR/quarantine/<stream>/`,
    beside a note of what in it is damaged; its new path."""
    folder = path.parent.parent.parent / "quarantine" / path.parent.name
    folder.mkdir(parents=True, exist_ok=True)
    target, n = folder / path.name, 0
    while target.exists():
        n += 1
        target = folder / f"{path.name}.{n}"
    shutil.move(path, target)
    lines = [f"pulse moved {path.name} here from {path.parent} on {time.strftime('%Y-%m-%d %H:%M:%S')}: "
             "it holds bytes that are not intact records. Every intact record in it was uploaded (or, for an "
             "overflow file, taken); these were not:"] + [f"  {d.describe()}" for d in damage]
    try:
        target.with_name(target.name + ".note").write_text("\n".join(lines) + "\n")
    except OSError as exc:
        log.error("pulse: could not write the note for %s: %s", target, exc)
    return target


def spooled_streams(root: Path) -> list[Path]:
    """Stream directories under `PULSE_DIR/spool` that still hold batches, or records spilled past the queue."""
    base = root / "spool"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".") and (
        any(p.glob("*.wal")) or (p / LEGACY_OVERFLOW).exists()))
