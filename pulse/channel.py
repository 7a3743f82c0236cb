"""Opening a gRPC channel to the ingest: plain on loopback, TLS when a CA is given (PULSE_TLS_CA).

Light on purpose (grpc and the standard library only): the emitter imports it.
"""

from __future__ import annotations

import os

import grpc

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
    """A channel to `server` (host:port); TLS verified against `tls_ca` (default: $PULSE_TLS_CA)."""
    ca = tls_ca if tls_ca is not None else os.environ.get("PULSE_TLS_CA", "")
    if ca:
        with open(ca, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        return grpc.secure_channel(server, credentials, options=list(options))
    return grpc.insecure_channel(server, options=list(options))


def auth_metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()
