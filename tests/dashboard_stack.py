"""`pulse up` for the dashboard suites: the stack that serves the seeded data, and a run that stays live.

The seeded data itself is in test_dashboard_seed.py.
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from test_dashboard_seed import RunBatches, Seeded, seed

from conftest import ROOT, free_port, wait_for
from pulse.v1 import telemetry_pb2 as pb

# -- the live run ---------------------------------------------------------------------------------------


class LiveRun:
    """A run that stays `running`: its stream sends a heartbeat every half second, and points when told."""

    def __init__(self, address: str, project: str, name: str = "live-run") -> None:
        self._run = RunBatches(project, name, time.time_ns() // 1000, config={"lr": 0.1})
        self.run_id = self._run.run_id
        self._seq = 0
        self._lock = threading.Lock()
        self._pending: queue.Queue = queue.Queue()
        self._acked = 0
        self._put(self._run.batches[0])  # the start
        self._channel = grpc.insecure_channel(address)
        call = self._channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=pb.Batch.SerializeToString,
                                           response_deserializer=pb.Ack.FromString)
        self._responses = call(self._batches(), timeout=600)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def log(self, steps: range, key: str = "Train/loss") -> None:
        """Send points for `steps` and wait until the ingest has committed them."""
        self._run.batches = []
        self._run.scalars({key: [(s, 1.0 / (s + 1)) for s in steps]}, seconds_per_step=0.01)
        seq = self._put(self._run.batches[0])
        wait_for(lambda: self._acked >= seq, timeout=60, what="the live points to be committed")

    def finish(self) -> None:
        self._run.batches = []
        self._run.finish()
        seq = self._put(self._run.batches[0])
        self._pending.put(None)
        wait_for(lambda: self._acked >= seq, timeout=60, what="the finish to be committed")
        self._reader.join(60)
        self._channel.close()

    def _put(self, batch: pb.Batch) -> int:
        with self._lock:
            self._seq += 1
            batch.seq = self._seq
            self._pending.put(batch)
            return self._seq

    def _batches(self):
        while True:
            try:
                batch = self._pending.get(timeout=0.5)
            except queue.Empty:
                heartbeat = pb.Batch(project=self._run.project, run_id=self.run_id, stream_id=f"{self.run_id}.seed")
                heartbeat.events.append(pb.Event(heartbeat=pb.Heartbeat(ts_us=time.time_ns() // 1000)))
                self._put(heartbeat)
                continue
            if batch is None:
                return
            yield batch

    def _read(self) -> None:
        for ack in self._responses:
            self._acked = max(self._acked, ack.seq)


# -- `pulse up` ------------------------------------------------------------------------------------------


class Stack:
    """`pulse up` (ingest with embedded chDB, plus the dashboard) in a subprocess."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port, self.ui_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://127.0.0.1:{self.ui_port}"
        self.log_path = data_dir.parent / "pulse-up.log"
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulse.cli", "up", "--data", str(data_dir), "--port", str(self.port),
             "--ui-port", str(self.ui_port), *args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        wait_for(lambda: "dashboard at" in self.log_path.read_text() or self.process.poll() is not None,
                 timeout=90, what="pulse up")
        if self.process.poll() is not None:
            raise RuntimeError(f"pulse up exited: {self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- the fixture the dashboard suites share ------------------------------------------------------------

_SHARED: dict[str, object] = {}


def shared_stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Stack, Seeded]:
    """One `pulse up` holding the seeded data for every dashboard suite: the first suite to ask starts
    it, and it stops when the test session ends."""
    if "stack" not in _SHARED:
        root = tmp_path_factory.mktemp("pulse-up")
        stack = Stack(root / "data", "--heartbeat-timeout", "3")
        request.config.add_cleanup(stack.stop)
        request.config.add_cleanup(_SHARED.clear)
        seeded = seed(stack.address)
        wait_for(lambda: _state(stack, seeded.project, seeded.runs["gamma-crashed"]) == "crashed", timeout=30,
                 what="the silent run to be marked crashed")
        _SHARED.update(stack=stack, seeded=seeded)
    return _SHARED["stack"], _SHARED["seeded"]


def _state(stack: Stack, project: str, run_id: str) -> str:
    from pulse.client import QueryClient

    client = QueryClient(stack.address, api_key="")
    try:
        rows = client.query("SELECT state FROM runs FINAL WHERE project = {p:String} AND run_id = {r:String}",
                            {"p": project, "r": run_id}).to_pylist()
    finally:
        client.close()
    return rows[0]["state"] if rows else ""
