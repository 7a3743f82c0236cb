"""Streams a spool's batches to the ingest over gRPC, resending whatever is unacknowledged.

One stream at a time: the request generator tails the spool from the last
acknowledged seq (so a reconnect resends exactly what was not acknowledged),
keeps at most `window` batches in flight, and the acks it gets back trim the
spool. Errors never reach the training loop: the transport backs off
(honouring the server's `retry-after-ms`) and tries again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import grpc

from pulse.v1 import telemetry_pb2 as pb

from .spool import Spool

log = logging.getLogger("pulse")

STREAM_METHOD = "/pulse.v1.Telemetry/Stream"
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]


def open_channel(server: str, tls_ca: str = "") -> grpc.Channel:
    if tls_ca:
        with open(tls_ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(server, credentials, options=CHANNEL_OPTIONS)
    return grpc.insecure_channel(server, options=CHANNEL_OPTIONS)


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


class Transport:
    def __init__(self, spool: Spool, server: str, *, api_key: str = "", tls_ca: str = "",
                 window: int = 64, on_rejection: Callable[[pb.Rejection], None] | None = None,
                 replay: bool = False) -> None:
        self._spool = spool
        self._server = server
        self._channel = open_channel(server, tls_ca)
        self._stream = self._channel.stream_stream(STREAM_METHOD, request_serializer=None,
                                                   response_deserializer=pb.Ack.FromString)
        self._metadata = auth_metadata(api_key)
        self._window = window
        self._on_rejection = on_rejection
        # Protobuf merges concatenated messages, so appending this sets `replay` on any batch.
        self._suffix = pb.Batch(replay=True).SerializeToString() if replay else b""
        self._closing = threading.Event()
        self._stopped = threading.Event()
        self._call: grpc.Call | None = None
        self.connected = threading.Event()
        self.reconnects = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="pulse-transport", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float) -> bool:
        """Send what is left, wait up to `timeout` for its acks; True when all were acknowledged."""
        self._closing.set()
        done = self._spool.wait_acked(timeout)
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
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    log.error("pulse: the server refused a batch: %s", exc.details())
                self._stopped.wait(delay)

    def _stream_once(self) -> None:
        self.reconnects += 1
        call = self._stream(self._requests(), metadata=self._metadata)
        self._call = call
        for ack in call:
            self.connected.set()
            for rejection in ack.rejected:
                if self._on_rejection:
                    self._on_rejection(rejection)
            self._spool.ack(ack.seq)

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
            yield self._spool.read(entry) + self._suffix
            sent = entry.seq


def _retry_after(exc: grpc.RpcError) -> float:
    """The server's `retry-after-ms` trailer (sent with UNAVAILABLE under backpressure), in seconds."""
    trailers = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
    for key, value in trailers or ():
        if key == "retry-after-ms" and value.isdigit():
            return int(value) / 1000
    return 0.0
