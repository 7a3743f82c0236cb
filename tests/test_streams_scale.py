"""One ingest holds 2,000 open telemetry streams while queries, CheckAccess and new trainers are served.

The streams are opened with grpc.aio from this process (a coroutine each, cheap), each sends
one small batch, gets its ack, and stays open; the ingest is a real subprocess. The benchmark
(`python -m bench.streams`) goes further and measures latency and memory.
"""

from __future__ import annotations

import asyncio
import resource
import threading
import time
import uuid

import grpc
import pytest

from conftest import Ingest, run_script, wait_for
from emitter.transport import RunBusy, check_access
from pulse.v1 import telemetry_pb2 as pb

STREAMS = 2000
CHANNELS = 8  # connections the streams share, as ranks on a few machines would


def raise_open_files_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


class HeldStreams:
    """`count` streams on their own event loop thread: each sends a start and a few points, stays open."""

    def __init__(self, address: str, project: str, count: int) -> None:
        self.address, self.project, self.count = address, project, count
        self.acked = 0
        self.errors: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._channels: list[grpc.aio.Channel] = []
        self._calls: list = []

    def open(self, timeout: float) -> None:
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(timeout)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _open(self) -> None:
        self._channels = [grpc.aio.insecure_channel(self.address, options=[("grpc.use_local_subchannel_pool", 1)])
                          for _ in range(CHANNELS)]
        await asyncio.gather(*(self._one(i) for i in range(self.count)))

    async def _one(self, i: int) -> None:
        channel = self._channels[i % CHANNELS]
        call = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=pb.Batch.SerializeToString,
                                     response_deserializer=pb.Ack.FromString)()
        self._calls.append(call)
        run_id = f"rank-{i}"
        batch = pb.Batch(project=self.project, run_id=run_id, stream_id=f"{run_id}.s", seq=1)
        now = time.time_ns() // 1000
        batch.events.append(pb.Event(start=pb.RunStart(name=run_id, created_at_us=now, host=f"node-{i // 8}")))
        batch.scalars.keys.append("loss")
        batch.scalars.key_index.extend([0, 0])
        batch.scalars.step.extend([0, 1])
        batch.scalars.ts_us.extend([now, now])
        batch.scalars.value.extend([1.0, 0.5])
        try:
            await call.write(batch)
            ack = await call.read()
            if ack is grpc.aio.EOF or ack.seq != 1 or ack.rejected:
                self.errors.append(f"{run_id}: {ack}")
            else:
                self.acked += 1
        except grpc.RpcError as exc:
            self.errors.append(f"{run_id}: {exc.code().name}: {exc.details()}")

    async def _close(self) -> None:
        for call in self._calls:
            call.cancel()
        for channel in self._channels:
            await channel.close()


@pytest.fixture
def roomy_ingest(tmp_path):
    raise_open_files_limit(8192)
    server = Ingest(tmp_path / "data", "--heartbeat-timeout", "600").start()
    yield server
    server.stop()


def test_two_thousand_open_streams_leave_queries_access_checks_and_new_trainers_served(roomy_ingest, tmp_path):
    project = f"scale-{uuid.uuid4().hex[:6]}"
    streams = HeldStreams(roomy_ingest.address, project, STREAMS)
    try:
        streams.open(timeout=600)
        assert streams.errors == [] and streams.acked == STREAMS

        # every stream is still open: the unary RPCs have threads of their own
        assert roomy_ingest.scalar("SELECT count() FROM runs FINAL WHERE project = {p:String} "
                                   "AND state = 'running'", p=project) == STREAMS
        assert roomy_ingest.scalar("SELECT count() FROM metrics FINAL WHERE project = {p:String}",
                                   p=project) == 2 * STREAMS
        reply = check_access(roomy_ingest.address, project, timeout=30)
        assert reply is not None and reply.max_batch_bytes > 0
        with pytest.raises(RunBusy, match="stream rank-7.s, host node-0"):  # each rank's stream owns its run
            check_access(roomy_ingest.address, project, timeout=30, run_id="rank-7")

        trainer = run_script("""
            import sys
            import emitter
            run = emitter.init(project=sys.argv[1])
            for step in range(100):
                emitter.log({"acc": step / 100})
            emitter.finish()
            print("RUN", run.id, len(run.transport.ack_latencies_ms))
        """, args=[project], env={"PULSE_SERVER": roomy_ingest.address, "PULSE_DIR": str(tmp_path / "pulse"),
                                  "PULSE_FINISH_TIMEOUT": "120"})
        assert trainer.returncode == 0, trainer.stderr
        _, run_id, acked = trainer.stdout.split()[-3:]
        assert int(acked) >= 1
        assert roomy_ingest.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String} AND key = 'acc'",
                                   r=run_id) == 100
    finally:
        streams.close()


def test_streams_past_a_keys_limit_are_refused_naming_it_and_a_closed_one_frees_its_slot(tmp_path):
    server = Ingest(tmp_path / "data", "--max-streams-per-key", "3").start()
    try:
        held = HeldStreams(server.address, f"limit-{uuid.uuid4().hex[:6]}", 4)
        held.open(timeout=120)
        assert held.acked == 3 and len(held.errors) == 1
        assert "RESOURCE_EXHAUSTED" in held.errors[0] and "--max-streams-per-key 3" in held.errors[0]
        held.close()

        def three_open() -> bool:  # once the ingest has seen the first ones go, their slots are free
            again = HeldStreams(server.address, f"limit-{uuid.uuid4().hex[:6]}", 3)
            again.open(timeout=120)
            again.close()
            return again.acked == 3

        wait_for(three_open, timeout=60, step=0.5, what="the closed streams' slots to be free")
    finally:
        server.stop()
