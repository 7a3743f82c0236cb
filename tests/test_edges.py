"""Nothing lost at the edges: every logged point is stored, or refused loudly at the call.

Each case goes through a real ingest: names and ids the server would refuse fail `init()`;
a bad step, key or value drops only itself; unicode names stream live; a log() wider than a
batch is split; a batch the server refuses whole is set aside and the stream moves on; a busy
run's summary is live; and `finish()` says what is stored.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid

import numpy as np
import pytest

import emitter
from conftest import ROOT, Ingest, run_script, wait_for
from emitter.rejected import rejected_dir
from emitter.spool import Spool
from emitter.transport import Transport
from pulse.v1 import telemetry_pb2 as pb


def project(prefix: str = "edge") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def stored(ingest: Ingest, project_name: str, run_id: str) -> dict[tuple[str, int], float]:
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE project = {p:String} AND "
                        "run_id = {r:String}", p=project_name, r=run_id)
    return {(r["key"], r["step"]): r["value"] for r in rows}


def messages(caplog, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


# -- init() refuses what the server would refuse, naming field, limit and size -----------------


@pytest.mark.parametrize("arguments, expected", [
    ({"name": "x" * 300}, "init(): name is 300 bytes long; the limit is 256"),
    ({"name": "é" * 200}, "init(): name is 400 bytes long; the limit is 256"),
    ({"name": "two\nlines"}, "init(): name contains control characters ('\\n' at position 3"),
    ({"group": "g" * 257}, "init(): group is 257 bytes long; the limit is 256"),
    ({"job_type": "train\r"}, "init(): job_type contains control characters"),
    ({"tags": ["ok", "t" * 300]}, "init(): tags[1] is 300 bytes long; the limit is 256"),
    ({"config": {"blob": "x" * (5 << 20)}}, "init(): config is 5,242,892 bytes as JSON; the limit is 4,194,304"),
    ({"project": "p" * 300}, "init(): project is 300 bytes long; the limit is 256"),
    ({"project": "tab\there"}, "init(): project contains control characters"),
])
def test_init_refuses_what_the_server_would_naming_field_limit_and_size(emitter_env, tmp_path, arguments,
                                                                         expected):
    arguments = {"project": project(), **arguments}
    with pytest.raises(ValueError) as refused:
        emitter.init(**arguments)
    assert str(refused.value).startswith(expected), str(refused.value)
    assert emitter.run is None
    spool = tmp_path / "pulse" / "spool"
    assert not spool.exists() or not any(spool.iterdir())  # nothing half-started on disk


@pytest.mark.parametrize("run_id, rule", [
    ("../x", "contains '/'"), ("a/b", "contains '/'"), ("/abs", "contains '/'"), ("..", "starts with '.'"),
    ("a\\b", "contains '\\\\'"), ("x" * 65, "the limit is 64 characters"), ("a b", "contains ' '"),
])
def test_a_run_id_that_could_leave_pulse_dir_is_refused_naming_the_id_and_the_rule(emitter_env, tmp_path,
                                                                                   run_id, rule):
    with pytest.raises(ValueError) as refused:
        emitter.init(project=project(), id=run_id)
    message = str(refused.value)
    assert message.startswith("init(): run id ") and rule in message, message
    assert repr(run_id)[:40] in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pulse"] or not any(tmp_path.iterdir())
    spool = tmp_path / "pulse" / "spool"
    assert not spool.exists() or not any(spool.iterdir())


def test_unicode_project_run_name_and_id_stream_live(emitter_env):
    name, run_id = project("café-实验"), f"实验-naïve-{uuid.uuid4().hex[:6]}"
    run = emitter.init(project=name, id=run_id, name="naïve 🚀 run", group="gröup")
    for step in range(200):
        emitter.log({"损失": step * 0.5, "café/acc": 1.0})
    # Stored while the run is still open: streamed live, not left for `pulse sync`.
    wait_for(lambda: len(stored(emitter_env, name, run_id)) == 400, timeout=60, what="the points, live")
    assert run.transport.connected.is_set()
    # gRPC metadata is ASCII: the balancer's routing header carries the percent-encoded form.
    route = dict(run.transport._metadata)["x-pulse-run"]
    assert route.isascii() and urllib.parse.unquote(route) == f"{name}/{run_id}"
    emitter.finish()
    points = stored(emitter_env, name, run_id)
    assert points[("损失", 199)] == 99.5 and points[("café/acc", 0)] == 1.0
    row = emitter_env.run_row(name, run_id)
    assert (row["name"], row["group"], row["state"]) == ("naïve 🚀 run", "gröup", "finished")


# -- log() drops only what is wrong, with a warning, counted --------------------------------------


def test_integral_float_steps_are_taken_and_each_bad_step_drops_only_its_call(emitter_env, caplog):
    name = project()
    run = emitter.init(project=name)
    emitter.log({"a": 1}, step=3.0)                  # integral float: step 3, as in W&B
    emitter.log({"a": 2}, step=2.5)                  # not a whole number: this call is dropped
    emitter.log({"a": 3}, step=4)
    emitter.log({"a": 4}, step=True)                 # a bool is no step
    emitter.log({"a": 5}, step=np.int64(5))          # numpy ints are
    emitter.log({"a": 6}, step=2 ** 63)              # past int64
    emitter.log({"a": 7}, step=-1)                   # negative
    emitter.log({"a": 8}, step=float("nan"))
    emitter.log({"a": 9}, step=np.float32(6.0))
    emitter.log({"b": 10})                           # the run goes on at step 6
    assert run.step == 7
    emitter.finish()
    assert stored(emitter_env, name, run.id) == {("a", 3): 1, ("a", 4): 3, ("a", 5): 5, ("a", 6): 9, ("b", 6): 10}
    stats = run.stats()
    assert stats["refused_calls"] == {"bad step": 5} and stats["dropped"] == {"bad step": 5}
    warned = [m for m in messages(caplog) if "dropped this call" in m]
    assert len(warned) == 1 and "step 2.5 (float) is not a whole number" in warned[0] and "'a'" in warned[0]
    closing = [m for m in messages(caplog) if f"run {run.id} finished" in m]
    assert closing == [f"pulse: run {run.id} finished: 5 metric points stored, 5 dropped (5 bad step); nothing "
                       f"left in the spool. {run.url}"]


def test_bad_keys_and_values_drop_only_themselves_nan_inf_and_big_ints_are_stored(emitter_env, caplog):
    name = project()
    run = emitter.init(project=name)
    emitter.log({"": 1, "k" * 600: 2, "bad\nkey": 3, 7: 4, "good": 5, "ünï/ключ": 6,
                 "huge": 10 ** 400, "big": 2 ** 53 + 1, "nan": float("nan"), "inf": -math.inf, "text": "x"})
    emitter.log({"good": 7, "huge": 10 ** 400})  # refused again: counted, warned once
    emitter.finish()
    points = stored(emitter_env, name, run.id)
    assert set(points) == {("good", 0), ("ünï/ключ", 0), ("big", 0), ("nan", 0), ("inf", 0), ("good", 1)}
    assert points[("big", 0)] == 9007199254740992.0  # an int is stored as the nearest double
    assert math.isnan(points[("nan", 0)]) and points[("inf", 0)] == -math.inf
    stats = run.stats()
    assert stats["dropped"] == {"bad key": 4, "bad value": 3}
    rejected = stats["rejected_keys"]
    assert set(rejected) == {"", "k" * 600, "bad\nkey", "7", "huge", "text"}
    assert rejected["k" * 600] == "key is 600 bytes long; the limit is 512 (value of type int)"
    assert "control characters" in rejected["bad\nkey"] and "range of a double" in rejected["huge"]
    warned = [m for m in messages(caplog) if "dropped key" in m]
    assert len(warned) == 6 and any("'huge'" in m and "type int is past the range" in m for m in warned)


def test_a_bad_value_in_a_log_spilled_past_the_queue_bound_is_counted_among_the_runs_refusals(
        emitter_env, monkeypatch, caplog):
    monkeypatch.setenv("PULSE_QUEUE_MAX_VALUES", "0")  # every log() spills to the overflow file
    name = project("spilled-refusal")
    run = emitter.init(project=name)
    emitter.log({"good": 1, "text": "x"})
    emitter.log({"good": 2, "text": "y"})
    emitter.finish()
    assert stored(emitter_env, name, run.id) == {("good", 0): 1.0, ("good", 1): 2.0}
    stats = run.stats()
    assert stats["overflowed"] == 2 and stats["dropped"] == {"bad value": 2}
    assert set(stats["rejected_keys"]) == {"text"} and "not a scalar" in stats["rejected_keys"]["text"]
    assert len([m for m in messages(caplog) if "dropped key 'text'" in m]) == 1


# -- batches sized by bytes ------------------------------------------------------------------------


def test_a_300000_key_log_is_split_across_batches_stored_whole_and_blocks_nothing(emitter_env):
    name = project("wide")
    run = emitter.init(project=name)
    wide = {f"layer_{i:06d}/weight_stat": i * 0.5 for i in range(300_000)}
    emitter.log(wide)
    for step in range(1, 11):
        emitter.log({"after": float(step)})
    emitter.finish()
    counts = emitter_env.query(
        "SELECT countIf(step = 0) AS wide, countIf(key = 'after') AS after, "
        "countIf(step = 0 AND value != toUInt32(substring(key, 7, 6)) * 0.5) AS wrong "
        "FROM metrics FINAL WHERE project = {p:String} AND run_id = {r:String}", p=name, r=run.id)[0]
    assert counts == {"wide": 300_000, "after": 10, "wrong": 0}
    stats = run.stats()
    assert stats["batches"] >= 300_000 // 20_000 and stats["pending_batches"] == 0
    assert stats["refused_batches"] == 0 and stats["points_written"] == 300_010
    summary = json.loads(emitter_env.run_row(name, run.id)["summary"])
    assert summary["after"] == 10.0 and summary["_pulse/summary_truncated"] > 0  # under the server's limit


def _batch(name: str, run_id: str, stream_id: str, seq: int, step: int, start: bool = False) -> bytes:
    batch = pb.Batch(project=name, run_id=run_id, stream_id=stream_id, seq=seq)
    if start:
        batch.events.append(pb.Event(start=pb.RunStart(name="refusals", created_at_us=time.time_ns() // 1000)))
    batch.scalars.keys.append("a")
    batch.scalars.key_index.append(0)
    batch.scalars.step.append(step)
    batch.scalars.ts_us.append(time.time_ns() // 1000)
    batch.scalars.value.append(float(step))
    return batch.SerializeToString()


@pytest.mark.parametrize("via", ["live", "pulse sync"])
def test_a_batch_the_server_refuses_whole_is_set_aside_on_disk_and_the_stream_moves_on(emitter_env, tmp_path,
                                                                                        via):
    name, run_id, stream_id = project("refused"), f"r{uuid.uuid4().hex[:8]}", "s1"
    directory = tmp_path / "pulse" / "spool" / f"{run_id}.{stream_id}"
    spool = Spool(directory)
    malformed = b"\x0a\xff\xff\xff\xff\x0f"  # a field whose length runs past the message
    oversize = pb.Batch(project=name, run_id=run_id, stream_id=stream_id, seq=4,
                        media=[pb.Media(key="m", data=b"\0" * (33 << 20))]).SerializeToString()
    # All five are in flight at once: the refused ones are found among batches sent after them.
    for seq, data in [(1, _batch(name, run_id, stream_id, 1, 0, start=True)), (2, malformed),
                      (3, _batch(name, run_id, stream_id, 3, 1)), (4, oversize),
                      (5, _batch(name, run_id, stream_id, 5, 2))]:
        spool.append(seq, data)
    if via == "live":
        transport = Transport(spool, emitter_env.address)
        transport.start()
        assert transport.close(120)
        assert [b.seq for b in transport.refused_batches] == [2, 4]
        spool.close(remove_if_empty=True)
    else:
        spool.close(remove_if_empty=False)
        synced = run_script("from pulse.cli import main; raise SystemExit(main(['sync']))",
                            {"PULSE_SERVER": emitter_env.address, "PULSE_DIR": str(tmp_path / "pulse")})
        assert "refused batch 2" in synced.stderr and "refused batch 4" in synced.stderr, synced.stderr
    assert stored(emitter_env, name, run_id) == {("a", 0): 0.0, ("a", 1): 1.0, ("a", 2): 2.0}
    kept = rejected_dir(directory)
    assert (kept / "00000002.pb").read_bytes() == malformed
    assert "malformed Batch" in (kept / "00000002.txt").read_text()
    assert (kept / "00000004.pb").read_bytes() == oversize
    assert "exceeds the limit" in (kept / "00000004.txt").read_text()
    assert not any(directory.glob("*.wal")) if directory.exists() else True  # nothing left to resend


@pytest.mark.parametrize("case", ["another stream's batch", "bad project", "oversize", "undecodable"])
def test_the_server_names_the_batch_it_refuses_whole_in_a_trailer_when_it_can_read_its_seq(emitter_env, case):
    import grpc

    from emitter.transport import STREAM_METHOD, refused_seq
    from pulse.channel import open_channel

    name, run_id = project("trailer"), f"r{uuid.uuid4().hex[:8]}"
    refused = {
        "another stream's batch": _batch(name, run_id, "other", 2, 1),
        "bad project": pb.Batch(project="bad\x01name", run_id=run_id, stream_id="s1", seq=2).SerializeToString(),
        "oversize": pb.Batch(project=name, run_id=run_id, stream_id="s1", seq=2,
                             media=[pb.Media(key="m", data=b"\0" * (33 << 20))]).SerializeToString(),
        "undecodable": b"\x0a\xff\xff\xff\xff\x0f",  # a field whose length runs past the message: no seq to read
    }[case]
    with open_channel(emitter_env.address) as channel:
        stream = channel.stream_stream(STREAM_METHOD, request_serializer=None, response_deserializer=pb.Ack.FromString)
        call = stream(iter([_batch(name, run_id, "s1", 1, 0, start=True), refused]), timeout=60)
        acks = []
        with pytest.raises(grpc.RpcError) as aborted:
            for ack in call:
                acks.append(ack.seq)
    assert acks == [1]  # the batch before it is acknowledged first
    assert aborted.value.code() == grpc.StatusCode.INVALID_ARGUMENT, aborted.value.details()
    assert refused_seq(aborted.value) == (0 if case == "undecodable" else 2)


# -- live summary and heartbeat on busy runs --------------------------------------------------------

BUSY_TRAINER = """
import os, time, emitter
run = emitter.init(project=os.environ["EDGE_PROJECT"])
print("RUN", run.id, flush=True)
step = 0
while True:  # never 5 s (here 1 s) without a batch: only a wall-clock timer sends the summary
    emitter.log({"loss": 1.0 / (step + 1), "step_seen": float(step)})
    step += 1
    time.sleep(0.0005)
"""


def test_a_busy_runs_summary_is_live_and_survives_a_sigkill(emitter_env, tmp_path):
    name = project("busy")
    env = {**os.environ, "PULSE_SERVER": emitter_env.address, "PULSE_DIR": str(tmp_path / "pulse"),
           "PULSE_HEARTBEAT_INTERVAL": "1", "EDGE_PROJECT": name, "PULSE_SYSTEM_INTERVAL": "0"}
    trainer = subprocess.Popen([sys.executable, "-c", BUSY_TRAINER], env=env, stdout=subprocess.PIPE,
                               text=True, cwd=ROOT)
    try:
        run_id = trainer.stdout.readline().split()[1]

        def summary() -> dict:
            row = emitter_env.run_row(name, run_id)
            return json.loads(row["summary"]) if row else {}

        first = wait_for(lambda: summary().get("step_seen"), timeout=60, what="a summary while the run is busy")
        later = wait_for(lambda: (seen := summary().get("step_seen", 0)) > first and seen, timeout=60,
                         what="the summary to follow the run")
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(30)
    finally:
        if trainer.poll() is None:
            trainer.kill()
    row = wait_for(lambda: (r := emitter_env.run_row(name, run_id)) and r["state"] == "crashed" and r,
                   timeout=60, what="the killed run to be marked crashed")
    kept = json.loads(row["summary"])
    assert kept["step_seen"] >= later > first and 0 < kept["loss"] < 1


# -- finish() tells the truth ----------------------------------------------------------------------

# A server whose limit on run names is stricter than this emitter knows (a newer server, say):
# the start passes the emitter's checks and is refused by the server.
STRICT_INGEST = """
import sys
import ingest.validate as validate
from pulse.cli import main

lenient = validate.event_problem

def strict(event):
    if event.WhichOneof("kind") == "start" and len(event.start.name.encode()) > 16:
        return f"name is {len(event.start.name.encode())} bytes long; this server's limit is 16"
    return lenient(event)

validate.event_problem = strict
sys.exit(main(["ingest", *sys.argv[1:]]))
"""


def test_finish_never_calls_a_run_whose_start_was_refused_finished_and_says_where_its_data_is(
        tmp_path, monkeypatch, caplog):
    server = Ingest(tmp_path / "data", command=[sys.executable, "-c", STRICT_INGEST]).start()
    try:
        monkeypatch.setenv("PULSE_SERVER", server.address)
        monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
        monkeypatch.setenv("PULSE_FINISH_TIMEOUT", "60")
        name = project("refused-start")
        run = emitter.init(project=name, name="a-name-of-twenty-five-b")
        for step in range(50):
            emitter.log({"loss": step * 0.1})
        emitter.finish()
        assert server.scalar("SELECT count() FROM metrics WHERE run_id = {r:String}", r=run.id) == 0
        assert server.run_row(name, run.id) is None
    finally:
        server.stop()
    kept = rejected_dir(run.spool.directory)
    batches = [pb.Batch.FromString(p.read_bytes()) for p in sorted(kept.glob("*.pb"))]
    assert sum(len(b.scalars.value) for b in batches) == 50  # every point, on disk
    assert batches[0].events[0].start.name == "a-name-of-twenty-five-b"
    stats = run.stats()
    assert "this server's limit is 16" in stats["start_refused"] and stats["refused_batches"] == len(batches)
    errors = messages(caplog, logging.ERROR)
    [closing] = [m for m in errors if f"run {run.id} was NOT stored" in m]
    assert "the server refused its start (name is 23 bytes long; this server's limit is 16)" in closing
    assert f"({50} metric points) are kept in {kept}" in closing
    assert not any(f"run {run.id} finished" in m for m in messages(caplog, logging.INFO))
