"""The ingest process: store, run registry, buffers and the gRPC server around them."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .admin import AdminService
from .auth import KeyStore
from .blobs import default_blob_url, open_blob_store
from .buffers import Buffers
from .runs import RunRegistry
from .storage import Store, open_store
from .sweeps.service import SweepService
from .telemetry import GRPC_MAX_MESSAGE_BYTES, TelemetryService

log = logging.getLogger(__name__)
SERVICE = "pulse.v1.Telemetry"


@dataclass
class IngestConfig:
    clickhouse_url: str
    host: str = "127.0.0.1"
    port: int = 50051
    heartbeat_timeout: float = 60.0
    flush_interval: float = 0.5
    flush_rows: int = 250_000
    max_buffer_rows: int = 4_000_000
    workers: int = 128
    # Where media bytes go: a directory path, file:///path (s3:// is not implemented yet). Empty:
    # PULSE_BLOB_URL, else `blobs` in the embedded store's data directory (see ingest/blobs.py).
    blob_url: str = ""
    # Security: API keys (--auth), TLS, and where the first admin key is written.
    auth: bool = False
    insecure: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    admin_key_path: str = ""
    # A ClickHouse cluster name (remote_servers): apply the `clustered` migrations ON CLUSTER.
    cluster: str = ""


def data_url(data_dir: str) -> str:
    """The embedded store's URL for a data directory."""
    path = os.path.abspath(os.path.expanduser(data_dir))
    os.makedirs(path, exist_ok=True)
    return f"chdb://{path}"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class IngestServer:
    def __init__(self, config: IngestConfig, store: Store | None = None) -> None:
        if not config.auth and not config.insecure and not is_loopback(config.host):
            raise PermissionError(f"refusing to listen on {config.host} without --auth: anyone who can reach it "
                                  "could write and read every project. Add --auth (API keys), or --insecure "
                                  "if the network is yours alone.")
        self.config = config
        self.store = store or open_store(config.clickhouse_url, cluster=config.cluster)
        self.registry = RunRegistry(self.store, config.heartbeat_timeout)
        adopted = self.registry.load_running()
        if adopted:
            log.info("adopted %d runs left running; they crash unless their heartbeats resume", adopted)
        self.health = health.HealthServicer()
        self.buffers = Buffers(self.store, self.registry, flush_rows=config.flush_rows,
                               flush_interval=config.flush_interval, max_rows=config.max_buffer_rows,
                               on_store_health=self._store_health)
        self.keys = KeyStore(self.store, enabled=config.auth)
        if config.auth and config.admin_key_path and self.keys.ensure_admin_key(Path(config.admin_key_path)):
            print(f"pulse ingest: wrote the admin API key to {config.admin_key_path} (mode 0600); "
                  "use it as PULSE_API_KEY to run `pulse keys create`", flush=True)
        self.blobs = open_blob_store(config.blob_url or default_blob_url(config.clickhouse_url))
        self.telemetry = TelemetryService(self.store, self.buffers, self.registry, self.keys, self.blobs)
        options = [("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
                   ("grpc.so_reuseport", 0)]
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers,
                                                           thread_name_prefix="pulse-rpc"),
                                options=options, maximum_concurrent_rpcs=config.workers - 8)
        self.grpc.add_generic_rpc_handlers((self.telemetry.handler(), AdminService(self.keys).handler()))
        self.sweeps = SweepService(self.store, self.registry, self.buffers, self.keys)
        self.grpc.add_generic_rpc_handlers((self.sweeps.handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        address = f"{config.host}:{config.port}"
        if config.tls_cert:
            with open(config.tls_key, "rb") as key, open(config.tls_cert, "rb") as cert:
                credentials = grpc.ssl_server_credentials(((key.read(), cert.read()),))
            self.port = self.grpc.add_secure_port(address, credentials)
        else:
            self.port = self.grpc.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {config.host}:{config.port}")

    def _store_health(self, healthy: bool) -> None:
        """While inserts fail, health says NOT_SERVING, so a balancer sends new streams elsewhere."""
        status = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            self.health.set(name, status)

    def start(self) -> None:
        self.grpc.start()
        for name in ("", SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("ingest listening on %s:%d, store %s", self.config.host, self.port,
                 self.config.clickhouse_url)

    def stop(self, grace: float = 5.0) -> None:
        """Stop taking streams, flush what is buffered, close the store."""
        self.health.enter_graceful_shutdown()
        self.grpc.stop(grace).wait()
        self.buffers.close()
        self.store.close()
        log.info("ingest stopped; %d batches taken", self.telemetry.batches)


def serve(config: IngestConfig, ready: threading.Event | None = None, store: Store | None = None) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    server = IngestServer(config, store)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server.start()
    print(f"pulse ingest: listening on {config.host}:{server.port}", flush=True)
    if ready:
        ready.set()
    stop.wait()
    server.stop()
