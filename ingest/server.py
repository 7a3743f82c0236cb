"""The ingest process: store, run registry, buffers and the gRPC server around them.

The server is grpc.aio on an event loop of its own thread: telemetry streams are coroutines
(thousands cost memory, not threads), while the sync unary handlers (Query, CheckAccess,
sweeps, admin, health) run in the `migration_thread_pool`, which streams never occupy.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import resource
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .admin import AdminService
from .artifacts import ArtifactService
from .auth import KeyStore
from .blobs import default_blob_url, open_blob_store
from .buffers import Buffers
from .http_sql import serve_sql
from .owners import RunOwners, StreamSlots
from .run_edits import RunEditService
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
    workers: int = 128  # threads for the unary RPCs
    stream_workers: int = 8  # threads that decode and buffer the streams' batches
    max_streams: int = 16_384  # open telemetry streams, all keys together
    max_streams_per_key: int = 4096
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
    # ClickHouse's HTTP interface for BI tools, read-only (ingest/http_sql.py) on `host`; 0: off.
    sql_port: int = 0


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
        raise_open_files_limit()
        self._stream_work = futures.ThreadPoolExecutor(config.stream_workers, thread_name_prefix="pulse-batch")
        self.telemetry = TelemetryService(
            self.store, self.buffers, self.registry, self.keys, self.blobs,
            owners=RunOwners(silence_timeout=config.heartbeat_timeout),
            slots=StreamSlots(per_key=config.max_streams_per_key, total=config.max_streams),
            work=self._stream_work)
        self.sweeps = SweepService(self.store, self.registry, self.buffers, self.keys)
        self._unary = futures.ThreadPoolExecutor(config.workers, thread_name_prefix="pulse-rpc")
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="pulse-aio", daemon=True)
        self._loop_thread.start()
        try:
            self.port = self._on_loop(self._build())
        except BaseException:
            self._stop_loop()
            raise
        if not self.port:
            self._stop_loop()
            raise OSError(f"cannot listen on {config.host}:{config.port}")

    async def _build(self) -> int:
        """Create the aio server on its loop (it binds to the loop it is made on); the port."""
        config = self.config
        options = [("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
                   ("grpc.so_reuseport", 0),
                   # A trainer's machine that vanished without closing its socket is found by pings,
                   # so the run it owned is free again within a minute (ingest/owners.py).
                   ("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 20_000),
                   ("grpc.http2.max_pings_without_data", 0),
                   # Calls the loop has not picked up yet wait in core's queue; past its default
                   # (1,000) core cancels them, which a whole job's ranks connecting at once exceed.
                   ("grpc.server.max_pending_requests", 4 * config.max_streams),
                   ("grpc.server.max_pending_requests_hard_limit", 4 * config.max_streams)]
        self.grpc = grpc.aio.server(migration_thread_pool=self._unary, options=options)
        self.grpc.add_generic_rpc_handlers((self.telemetry.handler(), AdminService(self.keys).handler(),
                                            self.sweeps.handler(),
                                            ArtifactService(self.store, self.keys, self.blobs).handler()))
        self.grpc.add_generic_rpc_handlers((RunEditService(self.registry, self.buffers, self.keys).handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc)
        address = f"{config.host}:{config.port}"
        if config.tls_cert:
            with open(config.tls_key, "rb") as key, open(config.tls_cert, "rb") as cert:
                credentials = grpc.ssl_server_credentials(((key.read(), cert.read()),))
            return self.grpc.add_secure_port(address, credentials)
        return self.grpc.add_insecure_port(address)

    def _on_loop(self, coroutine, timeout: float | None = 60.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(10)

    def _store_health(self, healthy: bool) -> None:
        """While inserts fail, health says NOT_SERVING, so a balancer sends new streams elsewhere."""
        status = health_pb2.HealthCheckResponse.SERVING if healthy else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            self.health.set(name, status)

    def start(self) -> None:
        self.sql_http = serve_sql(self.store, self.keys, self.config.host, self.config.sql_port)
        self._on_loop(self.grpc.start())
        for name in ("", SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("ingest listening on %s:%d, store %s", self.config.host, self.port,
                 self.config.clickhouse_url)

    def stop(self, grace: float = 5.0) -> None:
        """Stop taking streams, flush what is buffered, close the store."""
        self.health.enter_graceful_shutdown()
        if getattr(self, "sql_http", None):
            self.sql_http.stop()
        self._on_loop(self.grpc.stop(grace), timeout=grace + 30)
        self._stop_loop()
        self.buffers.close()
        self._stream_work.shutdown(wait=False)
        self._unary.shutdown(wait=False)
        self.store.close()
        log.info("ingest stopped; %d batches taken", self.telemetry.batches)


def raise_open_files_limit() -> None:
    """Every trainer's stream is a socket: lift the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d: %s", soft, exc)


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
