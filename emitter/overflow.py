"""Records spilled past the emitter's queue bound: `overflow.wal`, beside the run's spool segments.

When the queue is at its bound, `log()` hands its rows here instead of
blocking. Every `SPILL_RECORDS` of them are cut into batches within the live
sender's bounds (`batch_sizing.py`: values per batch and the byte budget, a
very wide row split by keys), encoded by an `Encoder` of their own stream
(`<stream>.spilled-<hex>`, with its own seqs) and appended as checksummed
records in the spool's own format (`records.py`), all of them in one write:
no pickle, so a spool directory copied from elsewhere is data, never code;
and no batch the server would refuse for its size reaches `pulse sync`. The
sender takes the file when it catches up and sends its rows in the run's own
stream; if the trainer dies first, `pulse sync` moves the file into a stream
directory of its own and uploads it as it is.

Taking is crash-safe: the file is renamed to `overflow.taking.wal` (new spills
start a fresh `overflow.wal`), its rows are appended to the spool and flushed
to disk, and only then is it removed. A kill at any point leaves the rows in
one file or the other, or both; `pulse sync` uploads both, and storage keeps
each (project, run_id, key, step) once.

A write the disk refuses drops those rows (counted, reported loudly) and
never raises into the training loop. A value the encoder refuses (not a scalar)
drops only its key, counted in the run's refusals (`run.stats()`).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from pulse.limits import BATCH_TARGET_BYTES
from pulse.v1 import telemetry_pb2 as pb

from .batch_sizing import MAX_BATCH_VALUES, sized_batches
from .checks import Refusals
from .encode import Encoder
from .records import Damage, frame, scan
from .spool import OVERFLOW, TornWrite, WriteFailures, quarantine, write_whole

log = logging.getLogger("pulse")
LEGACY_NOTE = ("legacy overflow.pkl not loaded: pickle files can execute code, so Pulse never reads them. "
               "Its records were spilled by a Pulse release before checksummed overflow files; if you trust "
               "the file, upload it with that release's `pulse sync`, then delete it.")
# The overflow file while the sender takes it: named `*.wal` so that a stream directory holding
# only it is still a spooled stream to `pulse sync` (spool.spooled_streams), and not numbered, so
# it is no segment of the spool's own.
TAKING = "overflow.taking.wal"
# Tests only (tests/test_sync_truth.py): SIGKILL this process inside take(), "taken" (the file renamed,
# its rows not yet in the spool) or "appended" (its rows in the spool, the file not yet removed).
KILL_IN_TAKE = os.environ.get("PULSE_TEST_KILL_IN_OVERFLOW_TAKE", "")


class Overflow:
    """The overflow file of one stream's spool directory; thread-safe (training thread writes,
    sender takes)."""

    def __init__(self, directory: Path, project: str, run_id: str, stream_id: str, *,
                 max_values: int = MAX_BATCH_VALUES, batch_bytes: int = BATCH_TARGET_BYTES,
                 refusals: Refusals | None = None) -> None:
        self.path = directory / OVERFLOW
        self.taking = directory / TAKING
        self._encoder = Encoder(project, run_id, f"{stream_id}.spilled-{secrets.token_hex(3)}", refusals=refusals)
        self._max_values = max_values
        self._batch_bytes = batch_bytes
        self._lock = threading.Lock()
        self._good_size = 0  # bytes of whole records in the file
        self._torn = False  # a partial record could not be truncated away: append nothing after it
        self._stuck = False  # the file can be neither read nor moved: leave it for `pulse sync`
        self.writes = WriteFailures(f"the overflow file {self.path}", "spilled log() calls")

    @property
    def dropped_records(self) -> int:
        """Spilled rows (one per `log()` call) that could not be written: lost, and counted here."""
        return self.writes.dropped

    @property
    def dropped_points(self) -> int:
        """The values those rows held."""
        return self.writes.dropped_points

    @property
    def write_failures(self) -> int:
        return self.writes.failures

    def has_records(self) -> bool:
        """Whether the file (or one a failed take left) is there for the sender to take."""
        return not self._stuck and (self.path.exists() or self.taking.exists())

    def write(self, rows: list) -> None:
        """Append `(step, ts_us, values)` rows as records of batches within the sender's bounds, in one
        write; on a disk error they are all dropped, counted and reported, never raised."""
        if not rows:
            return
        record = b"".join(frame(*self._encoder.encode(batch))
                          for batch in sized_batches(rows, self._max_values, self._batch_bytes))
        dropped = (len(rows), len(record), sum(len(r[2]) for r in rows))  # if the disk refuses it
        with self._lock:
            if self._torn:
                self._truncate_torn()
            if self._torn:
                self.writes.failed(TornWrite(0, "the file ends in a partial record"), *dropped)
                return
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                self.writes.failed(exc, *dropped)
                return
            try:
                write_whole(fd, record, self._good_size)
            except OSError as exc:
                self._torn = isinstance(exc, TornWrite)
                self.writes.failed(exc, *dropped)
                return
            finally:
                os.close(fd)
            self._good_size += len(record)
            self.writes.succeeded()

    def _truncate_torn(self) -> None:
        try:
            os.truncate(self.path, self._good_size)
            self._torn = False
        except FileNotFoundError:
            self._torn, self._good_size = False, 0
        except OSError:
            pass

    def take(self, write: Callable[[list], None]) -> int:
        """Hand every intact row in the file to `write`, then remove the file; the rows handed over.

        `write` appends the rows to the spool and returns once they are on disk: the file is
        removed only after that (moved to quarantine instead when it holds damage), so a kill at
        any point loses nothing. If `write` raises, the file stays and the next take hands its
        rows over again. Spills that arrive meanwhile go to a fresh file, never blocked by this.
        """
        with self._lock:
            if not self.taking.exists():  # else a take that failed left it: take that one first
                try:
                    os.replace(self.path, self.taking)
                except FileNotFoundError:
                    return 0
                except OSError as exc:
                    return self._stick(f"could not take {self.path} ({exc})")
                self._good_size, self._torn = 0, False
        try:
            data = self.taking.read_bytes()
        except OSError as exc:
            data, damage = b"", [Damage(0, 0, f"unreadable ({exc.strerror or exc})", 1, 0, 0)]
        else:
            damage = scan(data)[1]
        _kill_here("taken")
        rows = read_overflow(data)[2]
        if rows:
            write(rows)
        _kill_here("appended")
        try:
            # A tail cut short is a write that failed (counted when it did); anything else is bit rot.
            if any(d.kind != "cut short" for d in damage):
                where = quarantine(self.taking, damage)
                log.error("pulse: %s holds damaged records (%s); moved to %s", self.path,
                          "; ".join(d.describe() for d in damage), where)
            else:
                self.taking.unlink()
        except OSError as exc:
            # Taken again, its rows would be sent again and again: leave it for `pulse sync`.
            self._stick(f"could not remove {self.taking} after its rows were spooled ({exc})")
        return len(rows)

    def _stick(self, why: str) -> int:
        self._stuck = True
        log.error("pulse: %s; the overflow file stays for `pulse sync`", why)
        return 0

    def abandon(self) -> None:
        """In a forked child: a lock held by the parent's threads would never be released here."""
        self._lock = threading.Lock()


def _kill_here(point: str) -> None:
    if KILL_IN_TAKE == point:
        os.kill(os.getpid(), signal.SIGKILL)


def read_overflow(data: bytes) -> tuple[str, str, list]:
    """(project, run_id, rows) of an overflow file's bytes; damaged records are skipped."""
    project = run_id = ""
    rows: list = []
    for record in scan(data)[0]:
        batch = pb.Batch.FromString(data[record.offset:record.offset + record.length])
        project, run_id = batch.project, batch.run_id
        rows.extend(batch_rows(batch))
    return project, run_id, rows


def batch_rows(batch: pb.Batch) -> list:
    """A batch's scalars as the `(step, ts_us, values)` rows `log()` made (rows of one step and time
    with distinct keys come back merged, which is what the step holds anyway)."""
    block = batch.scalars
    keys = list(block.keys)
    rows: list = []
    row: dict = {}
    at = None
    for index, step, ts, value in zip(block.key_index, block.step, block.ts_us, block.value):
        key = keys[index]
        if (step, ts) != at or key in row:
            at, row = (step, ts), {}
            rows.append((step, ts, row))
        row[key] = value
    return rows
