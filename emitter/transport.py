"""Streams a spool's batches to the ingest over gRPC, resending whatever is unacknowledged.

One stream at a time: the request generator tails the spool from the last
acknowledged seq (so a reconnect resends exactly what was not acknowledged),
keeps at most `window` batches in flight, and the acks it gets back trim the
spool. Errors never reach the training loop: the transport backs off
(honouring the server's `retry-after-ms`) and tries again.

A batch the server refuses as a whole is never resent: resending it would be refused again
and block everything after it. Its bytes go to `PULSE_DIR/rejected/` (emitter/rejected.py), it
is acknowledged locally, it is reported loudly, and the stream moves on.

A batch that fails its checksum when read back (`CorruptRecord`) is skipped the same way: the
spool has already forgotten it, reported it and kept its file for quarantine, so the stream
goes on with the next batch instead of aborting the call.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from pulse.channel import auth_metadata, open_channel
from pulse.v1 import telemetry_pb2 as pb
from pulse.wire import REFUSED_SEQ, RETRY_AFTER_MS, RUN_ROUTE

from .rejected import set_aside
from .spool import CorruptRecord, Spool

log = logging.getLogger("pulse")

STREAM_METHOD = "/pulse.v1.Telemetry/Stream"
ACCESS_METHOD = "/pulse.v1.Telemetry/CheckAccess"


class AuthError(RuntimeError):
    """The server refused this process's API key (or it has none)."""


class RunBusy(RuntimeError):
    """Another live process writes this run: one writer per run."""


def check_access(server: str, project: str, api_key: str = "", tls_ca: str = "", timeout: float = 1.0,
                 run_id: str = "") -> pb.AccessReply | None:
    """Ask the server whether our key may write `project` (and, with `run_id`, where that run's
    steps left off); raise AuthError if it says no, RunBusy if another live process writes `run_id`.

    Anything else (no server yet, an old server) is not our business here:
    the run spools until the server answers, and the answer is None.
    """
    with open_channel(server, tls_ca) as channel:
        rpc = channel.unary_unary(ACCESS_METHOD, request_serializer=pb.AccessRequest.SerializeToString,
                                  response_deserializer=pb.AccessReply.FromString)
        try:
            reply = rpc(pb.AccessRequest(project=project, write=True, run_id=run_id), timeout=timeout,
                        metadata=auth_metadata(api_key))
        except grpc.RpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise AuthError(
                    f"{server} refused to let this run write project {project!r}: {exc.details()}. "
                    f"Set PULSE_API_KEY to a key for that project (an admin makes one with "
                    f"`pulse keys create --project {project}`).") from None
            return None
    if reply.HasField("run_live_owner"):
        owner = reply.run_live_owner
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(owner.since_us / 1e6))
        raise RunBusy(f"run {run_id!r} of project {project!r} is being written by another process (stream "
                      f"{owner.stream_id}, host {owner.host or 'unknown'}, since {since}): one process writes a "
                      "run at a time. Finish that one first (then init(id=..., resume=True) continues the run), "
                      "or give this process another id.")
    return reply


@dataclass(frozen=True)
class RefusedBatch:
    """A batch the server refused as a whole, kept on disk at `path`."""

    seq: int
    points: int  # metric points it held
    reason: str
    path: Path


class Transport:
    def __init__(self, spool: Spool, server: str, *, api_key: str = "", tls_ca: str = "",
                 window: int = 64, on_rejection: Callable[[pb.Rejection], None] | None = None,
                 replay: bool = False, route: str = "") -> None:
        self._spool = spool
        self._server = server
        self._channel = open_channel(server, tls_ca)
        self._stream = self._channel.stream_stream(STREAM_METHOD, request_serializer=None,
                                                   response_deserializer=pb.Ack.FromString)
        # `x-pulse-run` lets a load balancer pin each run's stream to one ingest replica. gRPC
        # metadata is ASCII, so it is percent-encoded (`café` -> `caf%C3%A9`): the balancer hashes
        # the encoded form, which is as stable as the name.
        self._metadata = auth_metadata(api_key) + (((RUN_ROUTE, route_header(route)),) if route else ())
        self._window = window
        self._on_rejection = on_rejection
        # Protobuf merges concatenated messages, so appending this sets `replay` on any batch.
        self._suffix = pb.Batch(replay=True).SerializeToString() if replay else b""
        self._closing = threading.Event()
        self._stopped = threading.Event()
        self._call: grpc.Call | None = None
        self.connected = threading.Event()
        self._sent_at: deque[tuple[int, float]] = deque()  # (seq, when sent), in seq order
        self.ack_latencies_ms: deque[float] = deque(maxlen=10_000)  # send to ack, per batch
        self.reconnects = 0
        self.last_error = ""
        self.refused = ""  # why the server will never take this stream (another process writes the run)
        self.refused_batches: list[RefusedBatch] = []  # refused as a whole: kept on disk, not resent
        self.corrupt_batches = 0  # failed their checksum when read back: never sent (the spool reported each)
        self._thread = threading.Thread(target=self._run, name="pulse-transport", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float) -> bool:
        """Send what is left, wait up to `timeout` for its acks; True when all were acknowledged."""
        self._closing.set()
        deadline = time.monotonic() + timeout
        while not (done := self._spool.wait_acked(min(0.2, max(0.0, deadline - time.monotonic())))):
            if self.refused or time.monotonic() >= deadline:
                break
        self._stopped.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(2.0)
        self._channel.close()
        return done

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopped.is_set():
            if self._closing.is_set() and self._spool.pending == 0:
                return
            try:
                self._stream_once()
                backoff = 0.2
            except grpc.RpcError as exc:
                self.connected.clear()
                if self._stopped.is_set():
                    return
                delay = _retry_after(exc) or backoff
                backoff = min(backoff * 2, 2.0)
                message = f"{exc.code().name}: {exc.details()}"
                if message != self.last_error:
                    log.info("pulse: stream to %s interrupted (%s); retrying", self._server, message)
                self.last_error = message
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and self._refused_in_flight(exc.details(),
                                                                                             refused_seq(exc)):
                    delay = 0.0  # the stream moves on at once, past the refused batch
                if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # retrying cannot help: say so once, stop
                    self.refused = exc.details() or message
                    log.error("pulse: the server refused this run's stream: %s. This process stops sending; "
                              "its records stay in %s (upload them with `pulse sync` once the other writer "
                              "has ended).", self.refused, self._spool.directory)
                    return
                self._stopped.wait(delay)

    def _stream_once(self) -> None:
        self.reconnects += 1
        self._sent_at.clear()
        call = self._stream(self._requests(), metadata=self._metadata)
        self._call = call
        for ack in call:
            self.connected.set()
            for rejection in ack.rejected:
                if self._on_rejection:
                    self._on_rejection(rejection)
            whole = [r.reason for r in ack.rejected if r.what == "batch"]
            # Refused whole ("unknown run": the run's start was refused): acknowledged, yet not stored.
            if whole and not self._set_aside(ack.seq, "; ".join(whole)):
                call.cancel()  # not acknowledged: resent on the next stream, and set aside then
                self._stopped.wait(1.0)
                return
            self._spool.ack(ack.seq)
            now = time.monotonic()
            while self._sent_at and self._sent_at[0][0] <= ack.seq:
                self.ack_latencies_ms.append((now - self._sent_at.popleft()[1]) * 1000)

    def _refused_in_flight(self, reason: str, named: int = 0) -> bool:
        """The server aborted the stream with INVALID_ARGUMENT: set aside the batch it refused.

        The server names that batch's seq in the `x-pulse-refused-seq` trailer when it could
        read it (`named`); it is taken when it is a batch this stream sent and has no ack for.
        Otherwise (bytes that do not parse, an older server) it is inferred: the server reads a
        stream's batches in order and acks each after commit, in order, and aborts right after
        the batch it cannot take, once the acks of those before it are out. So, with every ack of
        the stream read, the refused batch is the first one sent and not acknowledged. Either
        way everything sent before it is acknowledged. True when it was set aside.
        """
        if not self._sent_at:
            log.error("pulse: the server refused this stream (%s) with no batch in flight", reason)
            return False
        in_flight = [seq for seq, _ in self._sent_at]
        seq = named if named in in_flight else in_flight[0]
        if not self._set_aside(seq, reason):
            return False
        self._spool.ack(seq)
        return True

    def _set_aside(self, seq: int, reason: str) -> bool:
        """Move batch `seq` to the rejected directory and report it; False if it could not be kept."""
        entry = self._spool.after(seq - 1, 0)
        if entry is None or entry.seq != seq:
            return True  # no longer in the spool (acknowledged meanwhile): nothing to keep
        try:
            data = self._spool.read(entry)
        except CorruptRecord:  # rotted on disk: the spool forgot it and keeps its file for quarantine
            self.corrupt_batches += 1
            return True
        try:
            path = set_aside(self._spool.directory, seq, data, reason)
        except OSError as exc:  # a full disk: keep it in the spool and try again later
            log.error("pulse: the server refused batch %d of %s (%s), and it could not be set aside (%s); it "
                      "stays in the spool", seq, self._spool.directory, reason, exc)
            return False
        try:
            points = len(pb.Batch.FromString(data).scalars.value)
        except Exception:  # malformed bytes: that may be why it was refused
            points = 0
        self.refused_batches.append(RefusedBatch(seq, points, reason, path))
        if len(self.refused_batches) <= 3 or len(self.refused_batches) % 1000 == 0:
            log.error("pulse: the server refused batch %d (%d metric points) as a whole: %s. It is not resent; "
                      "its bytes are kept in %s (%d batches refused so far)", seq, points, reason, path,
                      len(self.refused_batches))
        return True

    def _requests(self) -> Iterator[bytes]:
        sent = self._spool.acked
        while not self._stopped.is_set():
            if sent - self._spool.acked >= self._window:
                self._spool.wait(lambda sent=sent: sent - self._spool.acked < self._window, 0.1)
                continue
            entry = self._spool.after(sent, timeout=0.05)
            if entry is None:
                if self._closing.is_set() and self._spool.appended <= sent:
                    return  # everything is sent: half-close, the server acks and ends the stream
                continue
            sent = entry.seq
            try:
                data = self._spool.read(entry) + self._suffix
            except CorruptRecord:  # the spool reported it and forgot it: raised here, it would abort the call
                self.corrupt_batches += 1
                continue
            self._sent_at.append((entry.seq, time.monotonic()))
            yield data


def route_header(route: str) -> str:
    """`x-pulse-run`'s value: `project/run_id`, percent-encoded to ASCII (gRPC metadata is ASCII)."""
    return urllib.parse.quote(route, safe="/")


def _retry_after(exc: grpc.RpcError) -> float:
    """The server's `retry-after-ms` trailer (sent with UNAVAILABLE under backpressure), in seconds."""
    return _trailer_int(exc, RETRY_AFTER_MS) / 1000


def refused_seq(exc: grpc.RpcError) -> int:
    """The seq of the batch the server refused, from its `x-pulse-refused-seq` trailer (sent with
    INVALID_ARGUMENT when it could read the batch's seq); 0 when there is none."""
    return _trailer_int(exc, REFUSED_SEQ)


def _trailer_int(exc: grpc.RpcError, name: str) -> int:
    trailers = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
    for key, value in trailers or ():
        if key == name and value.isdigit():
            return int(value)
    return 0
