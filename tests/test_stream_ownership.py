"""A run has one owner: another project's key cannot touch it, and two live processes never share it.

Real ingest processes (one with --auth), real gRPC streams, real trainer subprocesses.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import grpc
import pytest

from conftest import ROOT, Ingest, run_script, wait_for
from emitter.spool import Spool
from emitter.transport import Transport
from pulse.channel import auth_metadata
from pulse.client import QueryClient
from pulse.v1 import telemetry_pb2 as pb

STREAM = "/pulse.v1.Telemetry/Stream"
KEYS = 4  # scalars per batch


class RawStream:
    """One Stream call driven by hand: `send` a batch, `wait_acked` for its commit."""

    def __init__(self, address: str, api_key: str = "") -> None:
        self._channel = grpc.insecure_channel(address)
        self._outbox: queue.Queue = queue.Queue()
        call = self._channel.stream_stream(STREAM, request_serializer=pb.Batch.SerializeToString,
                                           response_deserializer=pb.Ack.FromString)
        self._call = call(iter(self._outbox.get, None), metadata=auth_metadata(api_key), timeout=120)
        self.acks: list[pb.Ack] = []
        self.error: grpc.RpcError | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def send(self, batch: pb.Batch) -> None:
        self._outbox.put(batch)

    def wait_acked(self, seq: int) -> None:
        wait_for(lambda: self.error or any(a.seq >= seq for a in self.acks), timeout=60, what=f"ack of seq {seq}")
        if self.error:
            raise self.error

    def wait_error(self) -> grpc.RpcError:
        self._reader.join(60)
        assert self.error is not None, "the stream was not refused"
        return self.error

    def close(self) -> None:
        self._outbox.put(None)  # half-close: the server acks what is left and ends the call
        self._reader.join(60)
        self._channel.close()

    def _read(self) -> None:
        try:
            for ack in self._call:
                self.acks.append(ack)
        except grpc.RpcError as exc:
            self.error = exc


def batch(project: str, run_id: str, stream_id: str, seq: int, *, start: bool = False, finish: bool = False,
          steps: range = range(0), replay: bool = False, resume: bool = False) -> pb.Batch:
    b = pb.Batch(project=project, run_id=run_id, stream_id=stream_id, seq=seq, replay=replay)
    now = time.time_ns() // 1000
    if start:
        b.events.append(pb.Event(start=pb.RunStart(name=run_id, created_at_us=now, host="test-host", resume=resume)))
    if steps:
        b.scalars.keys.extend([f"k{i}" for i in range(KEYS)])
        for step in steps:
            for i in range(KEYS):
                b.scalars.key_index.append(i)
                b.scalars.step.append(step)
                b.scalars.ts_us.append(now)
                b.scalars.value.append(step + i / 10)
    if finish:
        b.events.append(pb.Event(finish=pb.RunFinish(state="finished", ts_us=now)))
    return b


def refusal(address: str, api_key: str, *batches: pb.Batch) -> grpc.RpcError:
    stream = RawStream(address, api_key)
    for b in batches:
        stream.send(b)
    return stream.wait_error()


# -- another project's key ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    server = Ingest(tmp_path_factory.mktemp("owned") / "data", "--auth").start()
    yield server
    server.stop()


def create_key(server: Ingest, *flags: str) -> str:
    admin = (server.data_dir / "admin-key").read_text().strip()
    done = subprocess.run([sys.executable, "-m", "pulse.cli", "keys", "create", *flags], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PULSE_SERVER": server.address, "PULSE_API_KEY": admin})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1].split()[-1]


def test_another_projects_forged_batch_cannot_advance_or_end_a_run_and_every_point_is_stored(secured):
    a, b = f"own-a-{uuid.uuid4().hex[:6]}", f"own-b-{uuid.uuid4().hex[:6]}"
    key_a, key_b = create_key(secured, "--project", a), create_key(secured, "--project", b)
    run_id = uuid.uuid4().hex[:8]
    stream_id = f"{run_id}.victim"
    victim = RawStream(secured.address, key_a)
    victim.send(batch(a, run_id, stream_id, 1, start=True, steps=range(0, 10)))
    for seq in (2, 3):
        victim.send(batch(a, run_id, stream_id, seq, steps=range((seq - 1) * 10, seq * 10)))
    victim.wait_acked(3)

    huge = 2 ** 62
    # B's key naming A's project, A's run and A's stream, with a huge seq and a finish: refused whole.
    denied = refusal(secured.address, key_b, batch(a, run_id, stream_id, huge, finish=True))
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED and repr(a) in denied.details()
    # B's key in its own project with A's run id and stream id: B's own run, nothing of A's.
    forger = RawStream(secured.address, key_b)
    forger.send(batch(b, run_id, stream_id, huge, start=True, finish=True, steps=range(0, 1)))
    forger.wait_acked(huge)
    forger.close()

    for seq in (4, 5, 6):
        victim.send(batch(a, run_id, stream_id, seq, steps=range((seq - 1) * 10, seq * 10)))
    victim.wait_acked(6)
    victim.close()
    again = RawStream(secured.address, key_a)  # a reconnect of the same stream: its dedup is A's alone
    for seq in (7, 8, 9):
        again.send(batch(a, run_id, stream_id, seq, steps=range((seq - 1) * 10, seq * 10), finish=seq == 9))
    again.wait_acked(9)
    again.close()

    admin = QueryClient(secured.address, api_key=(secured.data_dir / "admin-key").read_text().strip())
    counts = admin.query("SELECT project, count() AS n, uniqExact(step) AS steps FROM metrics FINAL "
                         "WHERE run_id = {r:String} GROUP BY project ORDER BY project", {"r": run_id}).to_pylist()
    assert counts == [{"project": a, "n": 90 * KEYS, "steps": 90}, {"project": b, "n": KEYS, "steps": 1}]
    states = admin.query("SELECT project, state FROM runs FINAL WHERE run_id = {r:String} ORDER BY project",
                         {"r": run_id}).to_pylist()
    assert states == [{"project": a, "state": "finished"}, {"project": b, "state": "finished"}]
    admin.close()


def test_a_stream_that_switches_run_midway_is_refused_with_a_reason(ingest):
    project, run_id = f"own-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    error = refusal(ingest.address, "", batch(project, run_id, f"{run_id}.s", 1, start=True, steps=range(3)),
                    batch(project, "someone-else", f"{run_id}.s", 2, steps=range(3, 6)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "a stream writes one run" in error.details() and "'someone-else'" in error.details()


# -- one live writer per run ----------------------------------------------------------------------------


def test_a_second_live_stream_is_refused_a_replay_waits_and_the_run_is_free_once_its_owner_leaves(ingest):
    project, run_id = f"own-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    owner = RawStream(ingest.address)
    owner.send(batch(project, run_id, f"{run_id}.first", 1, start=True, steps=range(5)))
    owner.wait_acked(1)

    second = refusal(ingest.address, "", batch(project, run_id, f"{run_id}.second", 1, start=True, resume=True))
    assert second.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"run {run_id!r} of project {project!r} is being written by another process" in second.details()
    assert f"stream {run_id}.first, host test-host, since " in second.details()
    replay = refusal(ingest.address, "", batch(project, run_id, f"{run_id}.old", 1, steps=range(5), replay=True))
    assert replay.code() == grpc.StatusCode.FAILED_PRECONDITION

    owner.close()  # disconnected without a finish (a crash): the run is free at once
    resumed = RawStream(ingest.address)
    resumed.send(batch(project, run_id, f"{run_id}.second", 1, start=True, resume=True, steps=range(5, 10)))
    resumed.wait_acked(1)
    resumed.close()
    synced = RawStream(ingest.address)  # a dead process's spool, replayed by `pulse sync`
    synced.send(batch(project, run_id, f"{run_id}.old", 1, steps=range(10, 15), replay=True, finish=True))
    synced.wait_acked(1)
    synced.close()
    assert ingest.scalar("SELECT uniqExact(step) FROM metrics FINAL WHERE run_id = {r:String}", r=run_id) == 15
    assert ingest.run_row(project, run_id)["state"] == "finished"


def test_a_transport_refused_by_a_live_owner_says_so_once_and_stops(ingest, tmp_path, caplog):
    project, run_id = f"own-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    owner = RawStream(ingest.address)
    owner.send(batch(project, run_id, f"{run_id}.first", 1, start=True))
    owner.wait_acked(1)
    spool = Spool(tmp_path / "late")
    spool.append(1, batch(project, run_id, f"{run_id}.late", 1, start=True, steps=range(3)).SerializeToString())
    transport = Transport(spool, ingest.address)
    with caplog.at_level(logging.ERROR, logger="pulse"):
        transport.start()
        wait_for(lambda: transport.refused, timeout=60, what="the refusal")
        started = time.monotonic()
        assert transport.close(timeout=60) is False
    assert time.monotonic() - started < 30  # it does not wait out the timeout for acks that cannot come
    refusals = [r for r in caplog.records if "refused this run's stream" in r.getMessage()]
    assert len(refusals) == 1 and "being written by another process" in refusals[0].getMessage()
    assert spool.pending == 1  # kept for `pulse sync`
    spool.close()
    owner.close()


TRAINER = """
import os, sys, time
from pathlib import Path
import emitter
stop = Path(sys.argv[2])
run = emitter.init(project=sys.argv[1], id="{run_id}", resume={resume})
step = 0
while not stop.exists() or step < 20:
    emitter.log({{"loss": 1.0 / (step + 1)}})
    step += 1
    if step == 20:
        Path(str(stop) + ".streaming").write_text(run.stream_id)
    time.sleep(0.01)
emitter.finish()
print("STEPS", step)
"""


def trainer(project: str, run_id: str, stop, resume: bool = False) -> subprocess.Popen:
    code = textwrap.dedent(TRAINER.format(run_id=run_id, resume=resume))
    return subprocess.Popen([sys.executable, "-c", code, project, str(stop)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))


SECOND = """
import sys
import emitter
try:
    emitter.init(project=sys.argv[1], id=sys.argv[2], resume=sys.argv[3] == "resume")
except emitter.RunBusy as exc:
    print("BUSY", exc)
    sys.exit(3)
print("STARTED")
"""


def test_two_processes_on_one_run_id_the_second_is_refused_at_init_and_a_resume_after_continues(
        emitter_env, tmp_path):
    project, run_id = f"own-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    stop = tmp_path / "stop"
    first = trainer(project, run_id, stop)
    wait_for(lambda: (tmp_path / "stop.streaming").exists() or first.poll() is not None, timeout=120,
             what="the first trainer to stream")
    # its stream holds the run once a batch arrived: wait until the ingest has the run
    wait_for(lambda: emitter_env.run_row(project, run_id), timeout=60, what="the first trainer's run")
    for mode in ("new", "resume"):
        second = run_script(SECOND, args=[project, run_id, mode])
        assert second.returncode == 3, second.stdout + second.stderr
        assert f"run {run_id!r} of project {project!r} is being written by another process" in second.stdout
        assert "host " in second.stdout and "since " in second.stdout

    stop.write_text("")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    steps = int(out.split("STEPS")[1])
    resumed = trainer(project, run_id, stop, resume=True)  # the first has finished: the run continues
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    more = int(out.split("STEPS")[1])
    stored = emitter_env.query("SELECT min(step) AS lo, max(step) AS hi, count() AS n FROM metrics FINAL "
                               "WHERE run_id = {r:String} AND key = 'loss'", r=run_id)[0]
    assert stored == {"lo": 0, "hi": steps + more - 1, "n": steps + more}
    assert emitter_env.run_row(project, run_id)["state"] == "finished"


def test_a_killed_trainers_run_can_be_resumed_at_once(emitter_env, tmp_path):
    project, run_id = f"own-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    stop = tmp_path / "stop"
    first = trainer(project, run_id, stop)
    wait_for(lambda: (tmp_path / "stop.streaming").exists(), timeout=120, what="the first trainer to stream")
    wait_for(lambda: emitter_env.run_row(project, run_id), timeout=60, what="the first trainer's run")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    # the ingest sees the socket close: the run is free, without waiting for a heartbeat timeout
    second = run_script(SECOND, args=[project, run_id, "resume"])
    assert second.returncode == 0 and "STARTED" in second.stdout, second.stdout + second.stderr


def test_a_read_only_key_cannot_even_hold_a_stream_open(secured):
    reader = create_key(secured, "--read-only")
    stream = RawStream(secured.address, reader)  # sends nothing: refused at the door, holding no slot
    error = stream.wait_error()
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "read-only" in error.details()


def test_ownership_rules_same_stream_rejoins_another_key_or_stream_waits_silence_or_finish_frees():
    from ingest.owners import RunBusy, RunOwners

    owners, run = RunOwners(silence_timeout=0.2), ("p", "r")
    first, reconnect, other = object(), object(), object()
    owners.hold(run, "r.a", "key1", "host-a", first)
    owners.hold(run, "r.a", "key1", "host-a", reconnect)  # a reconnect overlapping its dying predecessor
    with pytest.raises(RunBusy, match=r"stream r\.a, host host-a"):
        owners.hold(run, "r.a", "key2", "host-b", other)  # the same stream id under another key
    owners.release(run, "r.a", first)
    with pytest.raises(RunBusy):
        owners.hold(run, "r.b", "key1", "host-b", other)  # one connection of the owner is still there
    time.sleep(0.3)  # silent past the heartbeat timeout, though connected: the run is free
    owners.hold(run, "r.b", "key1", "host-b", other)
    assert owners.live(run).stream_id == "r.b"
    owners.release(run, "r.a", reconnect)  # the old stream going away does not touch the new owner
    assert owners.live(run).stream_id == "r.b"
    owners.finished(run, "r.b")
    assert owners.live(run) is None
