"""Who writes each run now (one live stream per run), and how many streams each key holds open.

A run belongs to the stream that sends the first live (not replayed) batch for it, until
that stream finishes the run, every connection of it closes, or it falls silent for the
heartbeat timeout. Meanwhile a second writer (another stream id, or the same stream id
under another key) is refused, so two processes never interleave one run without a word.
A disconnect frees the run at once: a trainer restarted after a crash resumes without waiting
for a lease to run out (a crashed process's kernel closes its sockets; a machine that vanished
is found by the server's keepalive pings). `pulse sync` replays never take a run; they are
refused only while another live stream owns it.

Ownership is per ingest replica: a run's stream goes to one replica (`x-pulse-run` routing).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

RunKey = tuple[str, str]  # (project, run_id)


@dataclass
class Owner:
    stream_id: str
    key_id: str
    host: str
    since_us: int
    last_seen: float  # time.monotonic() of its last batch
    connections: set[object] = field(default_factory=set)

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.since_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"stream {self.stream_id}, host {self.host or 'unknown'}, since {since}"


class RunBusy(Exception):
    """Another live stream writes the run."""

    def __init__(self, run: RunKey, owner: Owner) -> None:
        super().__init__(f"run {run[1]!r} of project {run[0]!r} is being written by another process "
                         f"({owner.describe()}); one process writes a run at a time: wait for it to finish, "
                         "or resume the run once it has ended")
        self.owner = owner


class RunOwners:
    """The live owner of each run this replica streams; thread-safe."""

    def __init__(self, silence_timeout: float) -> None:
        self._silence = silence_timeout
        self._owners: dict[RunKey, Owner] = {}
        self._lock = threading.Lock()

    def hold(self, run: RunKey, stream_id: str, key_id: str, host: str, connection: object) -> None:
        """Take or keep `run` for this stream's live batch; RunBusy if another writer has it."""
        now = time.monotonic()
        with self._lock:
            owner = self._owners.get(run)
            if owner is not None and owner.stream_id == stream_id and owner.key_id == key_id:
                owner.connections.add(connection)  # a reconnect may overlap its dying predecessor
                owner.last_seen = now
                return
            if owner is not None and not self._lapsed(owner, now):
                raise RunBusy(run, owner)
            self._owners[run] = Owner(stream_id, key_id, host, time.time_ns() // 1000, now, {connection})

    def check_replay(self, run: RunKey, stream_id: str) -> None:
        """A replayed batch (pulse sync) goes in unless another live stream writes the run."""
        with self._lock:
            owner = self._owners.get(run)
            if owner is not None and owner.stream_id != stream_id and not self._lapsed(owner, time.monotonic()):
                raise RunBusy(run, owner)

    def finished(self, run: RunKey, stream_id: str) -> None:
        """The owner sent the run's finish: the run is free for a resume right away."""
        with self._lock:
            owner = self._owners.get(run)
            if owner is not None and owner.stream_id == stream_id:
                del self._owners[run]

    def release(self, run: RunKey, stream_id: str, connection: object) -> None:
        """A connection of the stream ended; the run is free once its last one has."""
        with self._lock:
            owner = self._owners.get(run)
            if owner is not None and owner.stream_id == stream_id:
                owner.connections.discard(connection)
                if not owner.connections:
                    del self._owners[run]

    def live(self, run: RunKey) -> Owner | None:
        """The stream that owns `run` now, if any."""
        with self._lock:
            owner = self._owners.get(run)
            return owner if owner is not None and not self._lapsed(owner, time.monotonic()) else None

    def _lapsed(self, owner: Owner, now: float) -> bool:
        return not owner.connections or now - owner.last_seen > self._silence


class TooManyStreams(Exception):
    pass


class StreamSlots:
    """Bounds on open streams, per API key and in all, so one key cannot hold the replica."""

    def __init__(self, per_key: int, total: int) -> None:
        self.per_key, self.total = per_key, total
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def take(self, key_id: str) -> None:
        with self._lock:
            if self._open[key_id] >= self.per_key:
                raise TooManyStreams(f"key {key_id} already has {self._open[key_id]} telemetry streams open, "
                                     f"the limit per key (--max-streams-per-key {self.per_key})")
            if self._open.total() >= self.total:
                raise TooManyStreams(f"this ingest already holds {self._open.total()} telemetry streams, "
                                     f"its limit (--max-streams {self.total}); retry later or add a replica")
            self._open[key_id] += 1

    def give(self, key_id: str) -> None:
        with self._lock:
            self._open[key_id] -= 1
            if self._open[key_id] <= 0:
                del self._open[key_id]

    @property
    def open(self) -> int:
        with self._lock:
            return self._open.total()
