"""What the benchmarks share: a real ingest process on a loopback port, on a fresh data directory."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_SQL_PORT = ("--sql-port", "0")  # a bench's ingest needs no SQL interface on a fixed port


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ingest_process(*args: str):
    """Yield (address, process) of `pulse ingest` on a temporary data directory.

    Without the SQL interface (`--sql-port 0`, unless `args` name a port): its default, 8123, may
    be taken by another ingest (a test run's, another bench's, the user's own `pulse up`)."""
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        port = free_port()
        log = open(Path(tmp) / "ingest.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "pulse.cli", "ingest", "--data", f"{tmp}/data",
                                    "--port", str(port), *NO_SQL_PORT, *args], stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ingest did not start: {(Path(tmp) / 'ingest.log').read_text()}")
                time.sleep(0.1)
            os.environ["PULSE_DIR"] = f"{tmp}/pulse"
            yield f"127.0.0.1:{port}", process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
