"""Opening a gRPC channel to the ingest: plain on loopback, TLS when a CA is given (PULSE_TLS_CA).

An address without a port means the ingest's default port, 50051 (gRPC alone would try 443).
Light on purpose (grpc and the standard library only): the emitter imports it.
"""

from __future__ import annotations

import logging
import os
import threading

import grpc

log = logging.getLogger("pulse")
DEFAULT_PORT = 50051

DEFAULT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 256 << 20),
)


def open_channel(server: str, tls_ca: str | None = None, options=DEFAULT_OPTIONS) -> grpc.Channel:
    """A channel to `server` (host:port, or host alone for port 50051); TLS verified against `tls_ca`
    (default: $PULSE_TLS_CA)."""
    server = with_default_port(server)
    ca = tls_ca if tls_ca is not None else os.environ.get("PULSE_TLS_CA", "")
    if ca:
        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(server, credentials, options=list(options))
    return grpc.insecure_channel(server, options=list(options))


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def with_default_port(server: str) -> str:
    """`server` with the ingest's port when it names none: "localhost" -> "localhost:50051"."""
    if not server or "://" in server or server.startswith(("unix:", "dns:", "ipv4:", "ipv6:")):
        return server  # a gRPC target URI says what it means
    if server.startswith("["):  # [v6] or [v6]:port
        return server if "]:" in server else f"{server}:{DEFAULT_PORT}"
    if server.count(":") > 1:  # a bare IPv6 address
        return f"[{server}]:{DEFAULT_PORT}"
    host, colon, port = server.partition(":")
    return f"{host}:{port or DEFAULT_PORT}"


def warn_if_unreachable(server: str, tls_ca: str | None = None, within: float = 2.0) -> threading.Thread:
    """Log one warning if the ingest at `server` does not answer within `within` seconds.

    On a daemon thread, so the caller never waits: a run goes on spooling while its server is away,
    and the warning says so (a wrong PULSE_SERVER would otherwise pass unnoticed until finish()).

        warn_if_unreachable(settings.server, settings.tls_ca)
    """
    def check() -> None:
        try:
            with open_channel(server, tls_ca) as channel:
                grpc.channel_ready_future(channel).result(timeout=within)
        except grpc.FutureTimeoutError:
            log.warning("pulse: cannot reach the ingest at %s within %g s (PULSE_SERVER): this run keeps "
                        "logging to the spool and is sent when the ingest answers (or with `pulse sync`)",
                        with_default_port(server), within)
        except Exception as exc:  # a bad address or CA file: said once, never raised into the training
            log.warning("pulse: cannot connect to the ingest at %s: %s", server, exc)

    thread = threading.Thread(target=check, name="pulse-reachability", daemon=True)
    thread.start()
    return thread
