"""The spool: an on-disk log of encoded batches, written before they are sent.

Every batch the emitter encodes is appended here first; the transport reads
it back to send, and the spool forgets a batch only once the server has
acknowledged it. So whatever was not acknowledged, when the server is away,
when `finish()` times out, or when the process is killed, is on disk for
`pulse sync`.

Layout: `PULSE_DIR/spool/<run_id>.<stream_id>/NNNNNNNN.wal`, each a sequence of
records `seq (u64) | length (u32) | crc32 (u32) | Batch bytes`. A torn record
at the end of a segment (a kill mid-write) fails its checksum and is ignored.
Beside them, `overflow.pkl` holds records spilled past the emitter's queue
bound before they were encoded (see `batcher.write_overflow`). Writes go
straight to the file descriptor, unbuffered, so a forked child has no
buffered bytes of ours to flush twice.
"""

from __future__ import annotations

import bisect
import fcntl
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HEADER = struct.Struct("<QII")
SEGMENT_BYTES = 16 << 20
OVERFLOW = "overflow.pkl"


@dataclass(frozen=True)
class Entry:
    seq: int
    segment: int
    offset: int
    length: int


class SpoolFull(OSError):
    pass


class SpoolBusy(OSError):
    """Another live process is writing this spool."""


class Spool:
    """The batches of one stream that the server has not acknowledged yet."""

    def __init__(self, directory: Path, max_bytes: int = 0) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise SpoolBusy(f"spool {directory} is in use by a live process") from None
        self._lock = threading.Condition()
        self._entries: list[Entry] = []  # unacknowledged, in seq order
        self._segment = 0
        self._fd = -1
        self._size = 0  # bytes in the current segment
        self._bytes = 0  # bytes in all segments on disk
        self.acked = 0
        self.appended = 0
        for segment in self._segments():
            self._bytes += (directory / _name(segment)).stat().st_size
            self._entries.extend(read_segment(directory, segment))
            self._segment = segment
        if self._entries:
            self.appended = self._entries[-1].seq

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._entries)

    @property
    def bytes_on_disk(self) -> int:
        return self._bytes

    def append(self, seq: int, data: bytes, force: bool = False) -> None:
        """Append a batch; SpoolFull past `max_bytes` unless `force` (lifecycle events always fit)."""
        record = HEADER.pack(seq, len(data), zlib.crc32(data)) + data
        with self._lock:
            if self.max_bytes and not force and self._bytes + len(record) > self.max_bytes:
                raise SpoolFull(f"spool {self.directory} would exceed {self.max_bytes >> 20} MB")
            if self._fd < 0 or self._size >= SEGMENT_BYTES:
                self._roll()
            os.write(self._fd, record)
            self._entries.append(Entry(seq, self._segment, self._size + HEADER.size, len(data)))
            self._size += len(record)
            self._bytes += len(record)
            self.appended = seq
            self._lock.notify_all()

    def _roll(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._segment += 1
        path = self.directory / _name(self._segment)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0

    def after(self, seq: int, timeout: float) -> Entry | None:
        """The first unacknowledged entry with a seq above `seq`, waiting up to `timeout`."""
        with self._lock:
            self._lock.wait_for(lambda: self.appended > seq, timeout)
            i = bisect.bisect_right(self._entries, seq, key=lambda e: e.seq)
            return self._entries[i] if i < len(self._entries) else None

    def read(self, entry: Entry) -> bytes:
        with open(self.directory / _name(entry.segment), "rb") as f:
            f.seek(entry.offset)
            return f.read(entry.length)

    def ack(self, seq: int) -> None:
        """Forget every batch up to `seq`, deleting segments that hold nothing else."""
        with self._lock:
            if seq <= self.acked:
                return
            self.acked = seq
            del self._entries[:bisect.bisect_right(self._entries, seq, key=lambda e: e.seq)]
            live = {e.segment for e in self._entries}
            for segment in self._segments():
                if segment not in live and (segment != self._segment or not self._entries):
                    if segment == self._segment and self._fd >= 0:
                        os.close(self._fd)
                        self._fd = -1
                    path = self.directory / _name(segment)
                    self._bytes -= path.stat().st_size
                    path.unlink()
            self._lock.notify_all()

    def wait_acked(self, timeout: float) -> bool:
        return self.wait(lambda: not self._entries, timeout)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate` holds; it is checked after every append and ack."""
        with self._lock:
            return self._lock.wait_for(predicate, timeout)

    def close(self, remove_if_empty: bool = True) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if remove_if_empty and not self._entries:
                shutil.rmtree(self.directory, ignore_errors=True)
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


def read_segment(directory: Path, segment: int) -> Iterator[Entry]:
    data = (directory / _name(segment)).read_bytes()
    offset = 0
    while offset + HEADER.size <= len(data):
        seq, length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        if start + length > len(data) or zlib.crc32(data[start:start + length]) != crc:
            break  # torn tail: the process died mid-write
        yield Entry(seq, segment, start, length)
        offset = start + length


def spooled_streams(root: Path) -> list[Path]:
    """Stream directories under `PULSE_DIR/spool` that still hold batches, or records spilled past the queue."""
    base = root / "spool"
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and (any(p.glob("*.wal")) or (p / OVERFLOW).exists()))
