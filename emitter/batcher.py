"""The bounded queue and the sender thread that turns its records into spooled batches.

The training thread only appends to a deque (see `Run.log`). The sender
wakes every `interval` (or when asked to flush), encodes what is queued into
batches of at most `max_batch_values` and about `batch_bytes` (a budget below
the server's limit, which the server states at init), appends them to the
spool and lets the transport know. One log() wider than a batch (hundreds of
thousands of keys) is split by keys across several batches at the same step;
storage keeps each (key, step) once. Every heartbeat interval of wall time,
however busy the run, a heartbeat and the summary (if it changed) go out too.

Past `max_values` queued, records go to an overflow file on
disk instead (`overflow.py`), so the training loop is never blocked and nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from pulse.limits import BATCH_TARGET_BYTES

from .batch_sizing import MAX_BATCH_VALUES, sized_batches
from .encode import Encoder
from .overflow import Overflow
from .spool import Spool, SpoolFull, SpoolWriteError
from .summary import SummaryTracker

log = logging.getLogger("pulse")
SPILL_RECORDS = 512
# Event kinds kept even when the spool is full: what makes a run a run.
LIFECYCLE = frozenset({"start", "config", "summary", "finish", "metric", "alert", "graph", "heartbeat", "update"})


class Batcher:
    def __init__(self, encoder: Encoder, spool: Spool, tracker: SummaryTracker, *,
                 interval: float = 0.1, heartbeat_interval: float = 5.0, max_values: int = 1_000_000,
                 max_batch_values: int = MAX_BATCH_VALUES, batch_bytes: int = BATCH_TARGET_BYTES,
                 on_batch=None) -> None:
        self.queue: deque = deque()
        self.max_values = max_values
        self.appended_values = 0  # written by the training thread only
        self.drained_values = 0  # written by the sender thread only
        self._encoder = encoder
        self._spool = spool
        self._tracker = tracker
        self._interval = interval
        self._heartbeat_interval = heartbeat_interval
        self._max_batch_values = max_batch_values
        self._batch_bytes = batch_bytes
        self._on_batch = on_batch
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._requested = 0
        self._completed = 0
        self._stopping = False
        self._overflow: list = []
        # Rows spilled past the queue bound, in batches of the same bounds; its counters say what a
        # full disk dropped there, and the values its encoder refuses count among the run's refusals.
        self.spilled = Overflow(spool.directory, encoder.project, encoder.run_id, encoder.stream_id,
                                max_values=max_batch_values, batch_bytes=batch_bytes, refusals=encoder.refusals)
        self._overflow_path = self.spilled.path
        self._last_batch = 0.0
        self._last_housekeeping = 0.0
        self._sent_summary = -1
        self.points_written = 0  # metric points in batches on the spool, all told
        self._marks: deque[tuple[int, int]] = deque()  # (seq, metric points) of unacknowledged batches
        self.overflowed = 0
        self.batches = 0
        self.errors = 0
        self.dropped_points = 0  # metric points
        self.dropped_records = 0  # histograms, images and system samples
        self.disk_dropped_points = 0  # metric points of batches the disk refused (full, quota, I/O error)
        self._last_drop_report = 0.0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="pulse-sender", daemon=True)
        self._thread.start()

    # -- training thread ------------------------------------------------------

    def overflow(self, record: tuple) -> None:
        """The queue is at its bound: keep the record on disk instead."""
        self._overflow.append(record)
        self.overflowed += 1
        if self.overflowed == 1:
            log.warning("pulse: the send queue is full (%d values); spilling records to %s",
                        self.max_values, self._overflow_path)
        if len(self._overflow) >= SPILL_RECORDS:
            self._spill()

    def _spill(self) -> None:
        records, self._overflow = self._overflow, []
        if not records:
            return
        self.spilled.write(records)  # never raises: a disk error drops and counts them

    def flush(self, timeout: float) -> bool:
        """Encode and spool everything queued so far; True if done within `timeout`."""
        self._spill()
        with self._done:
            self._requested += 1
            target = self._requested
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._completed >= target, timeout)

    def stop(self, timeout: float) -> bool:
        done = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        self._thread.join(max(timeout, 0.1))
        return done

    # -- sender thread --------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._done:
                target = self._requested
            try:
                self._drain()
            except Exception as exc:  # counted, logged once, reported by finish()
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.errors == 1:
                    log.exception("pulse: the sender failed; the run goes on")
            with self._done:
                self._completed = max(self._completed, target)
                self._done.notify_all()

    def _drain(self) -> None:
        now = time.monotonic()
        # On wall time, not on silence: a run that logs without pause still sends its summary.
        if now - self._last_housekeeping >= self._heartbeat_interval:
            self._last_housekeeping = now
            self._housekeeping()
        # Only what is queued now: records that arrive meanwhile wait for the next wake-up, so a
        # busy training loop makes one batch per interval, not a stream of tiny ones.
        queue, limit, left = self.queue, self._max_batch_values, len(self.queue)
        while left or self.spilled.has_records():
            records, n = [], 0
            while left and n < limit:
                record = queue.popleft()
                left -= 1
                records.append(record)
                if len(record) == 3:
                    n += len(record[2])
                elif record[0] == "deferred":
                    n += record[1].weight  # media count by size, so a batch stays under the ingest's limit
            if records:
                self.drained_values += n
                self._write_sized(records)
            else:  # the file goes only once its rows are on disk in the spool (overflow.py)
                self.spilled.take(self._write_spilled)
            time.sleep(0)  # let the training thread have the GIL between batches

    def _housekeeping(self) -> None:
        """Every heartbeat interval: a heartbeat, and the summary if it changed."""
        self.queue.append(("heartbeat", time.time_ns() // 1000))
        if self._tracker.version != self._sent_summary:
            self._sent_summary = self._tracker.version
            self.queue.append(("summary", self._tracker.result()))

    def _write_sized(self, records: list) -> None:
        """Write records as batches within `max_batch_values` and the byte budget, splitting a
        record that is larger alone (one very wide log()) by keys (batch_sizing.py)."""
        for batch in sized_batches(records, self._max_batch_values, self._batch_bytes):
            self._write(batch)

    def points_after(self, seq: int) -> int:
        """Metric points in the batches written after `seq`: those not acknowledged when `seq` is."""
        return sum(points for mark, points in list(self._marks) if mark > seq)

    def _write(self, records: list) -> None:
        if not records:
            return
        seq, data = self._encoder.encode(records)
        try:
            self._spool.append(seq, data)
        except SpoolFull as exc:
            self._spool_full(records, exc)
            return
        except SpoolWriteError:  # the disk refused it: the spool counted and reported the batch
            self.disk_dropped_points += sum(len(r[2]) for r in records if len(r) == 3)
            # The run's events go again with the next batch (a newer heartbeat will come anyway).
            self.queue.extendleft(reversed([r for r in records if len(r) == 2 and r[0] in LIFECYCLE
                                            and r[0] != "heartbeat"]))
            return
        self.batches += 1
        self._last_batch = time.monotonic()
        self.points_written += self._encoder.last_points
        self._marks.append((seq, self._encoder.last_points))
        acked = self._spool.acked
        while self._marks and self._marks[0][0] <= acked:
            self._marks.popleft()
        if self._on_batch is not None:
            self._on_batch()

    def _spool_full(self, records: list, exc: SpoolFull) -> None:
        """The spool is at PULSE_SPOOL_MAX_MB: the documented policy (docs/reliability.md).

        Lifecycle events (start, config, summary, finish, alerts) are always
        kept; this batch's metric points, histograms, images and system
        samples are dropped and counted. The count is
        logged at once and every 10 s while it grows, reported by finish(),
        and kept in the run summary as `_pulse/dropped_points`.
        """
        # Metric points and other records (histograms, images, system samples: "deferred") are
        # counted apart: a system sample counted as a metric point made stored + dropped overshoot
        # the points logged.
        self.dropped_points += sum(len(r[2]) for r in records if len(r) == 3)
        self.dropped_records += sum(len(r) == 2 and r[0] == "deferred" for r in records)
        self.last_error = str(exc)
        events = [r for r in records if len(r) == 2 and r[0] in LIFECYCLE]
        if events:
            seq, data = self._encoder.encode(events)
            self._spool.append(seq, data, force=True)
        self._tracker.set_explicit({"_pulse/dropped_points": self.dropped_points,
                                    "_pulse/dropped_records": self.dropped_records})
        now = time.monotonic()
        if now - self._last_drop_report >= 10 or self._last_drop_report == 0:
            self._last_drop_report = now
            log.error("pulse: %s (PULSE_SPOOL_MAX_MB) while the server is not acknowledging: DROPPING metric "
                      "points (%d so far); run events are kept. Raise PULSE_SPOOL_MAX_MB or bring the server "
                      "back.", exc, self.dropped_points)

    def _write_spilled(self, rows: list) -> None:
        """Rows taken from the overflow file: written to the spool and flushed to disk, so the file
        can go without a crash losing them."""
        self._write_sized(rows)
        self._spool.sync()

    # -- fork -----------------------------------------------------------------

    def abandon(self) -> None:
        """In a forked child: the sender thread does not exist here; drop our state."""
        self.queue = deque()
        self._overflow = []
        self._stopping = True
        self._wake = threading.Event()
        self._done = threading.Condition()
        self.spilled.abandon()
