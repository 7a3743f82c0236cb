"""What `pulse up`, `pulse ingest` and `pulse demo` check before they start, and wait for before they say so.

- One data directory per user whichever directory a command starts in: `$PULSE_DATA`, else
  `$XDG_DATA_HOME/pulse`, else `~/.local/share/pulse`.
- One process owns an embedded store's directory (chDB's rule): the owner holds `pulse.lock` in it
  (an flock, released by the kernel however the process ends) with its pid and command, so a second
  one is refused in one line naming the first, before it opens chDB.
- A taken port (gRPC, dashboard, SQL) is refused in one line naming the flag that moves it.
- The banner waits until the ingest and the dashboard answer (`wait_ready`).

Standard library only: `pulse` imports it for every command.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

LOCK_NAME = "pulse.lock"
READY_TIMEOUT_S = 180.0
_held: list[Any] = []  # the open lock files of this process: closing one would release its lock


def default_data_dir() -> str:
    """`$PULSE_DATA`, else `$XDG_DATA_HOME/pulse`, else `~/.local/share/pulse`."""
    if os.environ.get("PULSE_DATA"):
        return os.environ["PULSE_DATA"]
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "pulse")


class DataDirInUse(RuntimeError):
    """Another live process owns the data directory."""


def lock_data_dir(path: str | os.PathLike[str]) -> None:
    """Own the embedded store's directory for the rest of this process, or raise DataDirInUse."""
    directory = Path(path).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    lock = open(directory / LOCK_NAME, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        lock.seek(0)
        owner = lock.read().strip() or "another process"
        lock.close()
        raise DataDirInUse(f"the data directory {directory} is in use by {owner}: stop it first, "
                           "or give this one another --data") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()} ({_command_line()})\n")
    lock.flush()
    _held.append(lock)


def _command_line() -> str:
    try:
        return Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "pulse"


def port_problem(host: str, port: int, flag: str) -> str | None:
    """Why `host:port` cannot be listened on (None when it can); `flag` is the option that moves it."""
    if not port:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            taken = exc.errno == errno.EADDRINUSE
            why = "is taken by another program" if taken else f"cannot be listened on ({exc.strerror})"
            return f"port {port} on {host} {why}: {flag} picks another"
    return None


def preflight(args: Any, store_url: str) -> str | None:
    """The first reason `pulse up/ingest/demo` with `args` cannot start (None: go ahead), owning
    the data directory when the store is the embedded one."""
    ports = [(args.port, "--port"), (getattr(args, "sql_port", 0), "--sql-port")]
    if getattr(args, "ui_port", None) and not getattr(args, "no_ui", False):
        ports.append((args.ui_port, "--ui-port"))
    for port, flag in ports:
        if problem := port_problem(args.host, port, flag):
            return problem
    if store_url.startswith("chdb:"):
        try:
            lock_data_dir(store_url.removeprefix("chdb://"))
        except DataDirInUse as exc:
            return str(exc)
    return None


def wait_ready(ingest: str | None, dashboard_url: str | None, dashboard: subprocess.Popen | None = None,
               stop: threading.Event | None = None, timeout: float = READY_TIMEOUT_S) -> bool:
    """Wait until the ingest at `ingest` (host:port; None: no check) answers its health check and, with
    `dashboard_url`, the dashboard answers its own; False when `stop` is set, the dashboard exits or
    `timeout` passes."""
    deadline = time.monotonic() + timeout
    checks = [lambda: _ingest_serving(ingest)] if ingest else []
    if dashboard_url:
        checks.append(lambda: _dashboard_healthy(dashboard_url))
    for check in checks:
        while not check():
            if (stop is not None and stop.is_set()) or (dashboard is not None and dashboard.poll() is not None):
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
    return True


def _ingest_serving(address: str) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from pulse.channel import open_channel

    try:
        with open_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def _dashboard_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/_stcore/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False
