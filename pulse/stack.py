"""`pulse up`: the ingest service in this process and the dashboard beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dashboard
from pulse.startup import wait_ready


def start_dashboard(port: int, server: str | None = None, clickhouse: str | None = None,
                    host: str = "127.0.0.1", blob_url: str | None = None) -> subprocess.Popen:
    """Start `streamlit run dashboard/app.py` on `host` (loopback unless told otherwise) reading
    through `server` (or ClickHouse directly); `blob_url` is where the ingest keeps media bytes, which
    the Media page reads.

    The dashboard holds no API key of its own: with auth on, each browser session signs in with its
    user's key, so even a key in this process's environment stays out of it.
    """
    env = dict(os.environ)
    env.pop("PULSE_API_KEY", None)
    if blob_url:
        env["PULSE_BLOB_URL"] = blob_url
    if server:
        env["PULSE_SERVER"] = server
    if clickhouse:
        env["PULSE_CLICKHOUSE_URL"] = clickhouse
    else:
        env.pop("PULSE_CLICKHOUSE_URL", None)
    app = Path(dashboard.__file__).with_name("app.py")
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
         "--server.address", host, "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--client.toolbarMode", "viewer"],
        env=env, stdout=subprocess.DEVNULL)


def run_stack(config, ui_port: int | None, on_ready=None) -> int:
    """Serve until SIGINT/SIGTERM (or the dashboard dies); `on_ready(address, stop)` runs once
    the ingest listens, with the event that stops the stack."""
    from ingest.server import IngestServer, is_loopback

    server = IngestServer(config)
    server.start()
    stop = threading.Event()
    # Clients on this machine reach a wildcard listener through loopback.
    local_host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    address = f"{local_host}:{server.port}"
    print(f"pulse: ingest listening on {address} (store {config.clickhouse_url})", flush=True)
    if not config.auth and not is_loopback(config.host):  # the ingest let it through: --insecure
        parts = "the ingest listens" if ui_port is None else "the ingest and the dashboard listen"
        warn_exposed(f"{parts} on {config.host} without --auth",
                     f"port {server.port}" + ("" if ui_port is None else f" or {ui_port}"))
    _retire_dashboard_key(server)
    ui = None
    if ui_port is not None:
        ui = start_dashboard(ui_port, server=address, host=config.host,
                             blob_url=getattr(getattr(server, "blobs", None), "url", None))
        threading.Thread(target=_watch_dashboard, args=(ui, stop), daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        # The banner waits until both answer: a URL printed earlier leads to a page that does not load yet.
        ingest = None if config.tls_cert else address  # in this process: already serving, however it is reached
        if ui is not None and wait_ready(ingest, f"http://{local_host}:{ui_port}", ui, stop):
            print(f"pulse: dashboard at http://{local_host}:{ui_port}", flush=True)
        if on_ready is not None and not stop.is_set():
            on_ready(address, stop)
        stop.wait()
    finally:
        if ui is not None:
            ui.terminate()
            ui.wait(10)
        server.stop()
    return 0


def _watch_dashboard(ui: subprocess.Popen, stop: threading.Event) -> None:
    code = ui.wait()
    if not stop.is_set():
        print(f"pulse: the dashboard exited with code {code}; stopping", file=sys.stderr, flush=True)
        stop.set()


def _retire_dashboard_key(server) -> None:
    """Older versions gave the dashboard a read-only key for every project (<data dir>/dashboard-key);
    the dashboard now reads with each user's own key, so that key is revoked and its file removed."""
    path = Path(server.config.admin_key_path).with_name("dashboard-key")
    if not path.exists():
        return
    from dashboard.access import key_id_of

    key_id = key_id_of(path.read_text().strip())
    if key_id:
        server.keys.revoke(key_id)
    path.unlink()
    print(f"pulse: revoked the dashboard's own key {key_id} (the dashboard now asks each user for theirs)",
          flush=True)


def warn_exposed(what: str, where: str) -> None:
    """The loud warning of a part serving every project to the network without API keys."""
    bar = "!" * 78
    print(f"{bar}\npulse: WARNING: {what}.\n"
          f"pulse: WARNING: anyone who can reach {where} reads (and, through the ingest, writes) EVERY project.\n"
          "pulse: WARNING: add --auth (API keys), or listen on 127.0.0.1 (the default).\n"
          f"{bar}", file=sys.stderr, flush=True)


def dashboard_exposure(host: str, server: str | None, clickhouse: str | None) -> str | None:
    """Why a dashboard on `host` would serve every project to whoever reaches it (None: it would not):
    it listens beyond loopback, and either reads ClickHouse directly (no login) or the ingest it reads
    through does not ask for keys (or cannot say)."""
    from dashboard.access import LoginError, auth_required
    from ingest.server import is_loopback

    if is_loopback(host):
        return None
    if clickhouse and clickhouse.startswith(("http://", "https://")):
        return f"the dashboard listens on {host} and reads ClickHouse directly, without a login"
    target = server or os.environ.get("PULSE_SERVER") or "127.0.0.1:50051"
    try:
        if auth_required(target):
            return None
    except LoginError as exc:
        return f"the dashboard listens on {host}, and whether the ingest requires keys is unknown ({exc})"
    return f"the dashboard listens on {host} and the ingest at {target} requires no API keys"
