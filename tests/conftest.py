"""Shared fixtures: a real ingest process on a loopback port, real chDB, real emitters."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Tests start many ingests at once: the SQL interface (default port 8123) only where a test asks for it
# (`--sql-port P`); set, not defaulted, so a PULSE_SQL_PORT exported in the shell cannot make them collide.
os.environ["PULSE_SQL_PORT"] = "0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 60.0, step: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


class Ingest:
    """`pulse ingest` in a subprocess, on a data directory that survives restarts."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None,
                 command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "pulse.cli", "ingest"]
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = list(args)
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / f"ingest-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self._client = None

    def start(self) -> Ingest:
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [*self.command, "--data", str(self.data_dir), "--port", str(self.port), *self.args],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_for(lambda: "listening on" in self.log_path.read_text() or self.process.poll() is not None,
                 timeout=60, what="ingest to listen")
        if self.process.poll() is not None:
            raise RuntimeError(f"ingest exited: {self.log_path.read_text()[-3000:]}")
        # the log may hold an earlier incarnation's line: wait for the port itself
        wait_for(self._listening, timeout=60, what="ingest port")
        return self

    def _listening(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._client is not None:
            self._client.close()
            self._client = None

    def query(self, sql: str, **parameters) -> list[dict]:
        from pulse.client import QueryClient

        if self._client is None:
            self._client = QueryClient(self.address, api_key="")
        return self._client.query(sql, parameters).to_pylist()

    def scalar(self, sql: str, **parameters):
        return next(iter(self.query(sql, **parameters)[0].values()))

    def run_row(self, project: str, run_id: str) -> dict | None:
        rows = self.query("SELECT * FROM runs FINAL WHERE project = {p:String} AND run_id = {r:String}",
                          p=project, r=run_id)
        return rows[0] if rows else None


@pytest.fixture(scope="session")
def ingest(tmp_path_factory) -> Ingest:
    """One ingest for the tests that don't kill it; tests keep apart by project name."""
    root = tmp_path_factory.mktemp("ingest")
    server = Ingest(root / "data", "--heartbeat-timeout", "4").start()
    yield server
    server.stop()


@pytest.fixture
def fresh_ingest(tmp_path) -> Ingest:
    """An ingest of this test's own, free to kill and restart."""
    server = Ingest(tmp_path / "data", "--heartbeat-timeout", "4")
    yield server
    server.stop()


@pytest.fixture
def emitter_env(ingest, tmp_path, monkeypatch):
    """Point emitters in this process (and subprocesses) at the shared ingest."""
    monkeypatch.setenv("PULSE_SERVER", ingest.address)
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
    monkeypatch.delenv("PULSE_MODE", raising=False)
    monkeypatch.setenv("PULSE_FINISH_TIMEOUT", "60")
    return ingest


def run_script(code: str, env: dict[str, str] | None = None, timeout: float = 180,
               args: list[str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run Python `code` in a fresh interpreter (a real training process)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *(args or [])], env=full_env,
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT)
