"""`pulse up`: the ingest service in this process and the dashboard beside it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dashboard


def start_dashboard(port: int, server: str | None = None, clickhouse: str | None = None,
                    host: str = "127.0.0.1", api_key: str | None = None,
                    blob_url: str | None = None) -> subprocess.Popen:
    """Start `streamlit run dashboard/app.py` reading through `server` (or ClickHouse directly);
    `blob_url` is where the ingest keeps media bytes, which the Media page reads."""
    env = dict(os.environ)
    if api_key is not None:
        env["PULSE_API_KEY"] = api_key
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
    from ingest.server import IngestServer

    server = IngestServer(config)
    server.start()
    stop = threading.Event()
    # Clients on this machine reach a wildcard listener through loopback.
    local_host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "") else config.host
    address = f"{local_host}:{server.port}"
    print(f"pulse: ingest listening on {address} (store {config.clickhouse_url})", flush=True)
    ui = None
    if ui_port is not None:
        ui = start_dashboard(ui_port, server=address, host=config.host, api_key=_dashboard_key(server),
                             blob_url=getattr(getattr(server, "blobs", None), "url", None))
        print(f"pulse: dashboard at http://{local_host}:{ui_port}", flush=True)
        threading.Thread(target=_watch_dashboard, args=(ui, stop), daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if on_ready is not None:
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


def _dashboard_key(server) -> str | None:
    """With auth on, the dashboard reads with a read-only key of its own, kept beside the admin key."""
    if not server.config.auth:
        return None
    path = Path(server.config.admin_key_path).with_name("dashboard-key")
    if not path.exists():
        key = server.keys.create(read_only=True, note="dashboard")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
    return path.read_text().strip()
