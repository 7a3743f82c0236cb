"""Nothing lost, nothing duplicated, whatever dies: each case counts every point.

A point is (run, key, step). "Zero loss" is: every step a trainer logged (or,
for a killed trainer, every step it got to disk) is stored. "Zero
duplicates" is: `count() FROM metrics FINAL` equals the distinct (key, step)
count, i.e. retries collapsed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import emitter
from conftest import ROOT, Ingest, run_script, wait_for

TRAINER = """
import os, sys, time, emitter
steps, pause = int(sys.argv[1]), float(sys.argv[2])
run = emitter.init(project=os.environ["FAULT_PROJECT"])
print("RUN", run.id, flush=True)
for step in range(steps):
    emitter.log({f"k{j}": step * 10 + j for j in range(10)})
    if pause:
        time.sleep(pause)
emitter.finish()
print("DONE", step + 1, flush=True)
"""


def counts(server: Ingest, run_id: str) -> dict:
    return server.query(
        "SELECT (SELECT count() FROM metrics FINAL WHERE run_id = {r:String}) AS final, "
        "(SELECT uniqExact(key, step) FROM metrics WHERE run_id = {r:String}) AS distinct_points, "
        "(SELECT max(step) + 1 FROM metrics WHERE run_id = {r:String}) AS steps, "
        "(SELECT countIf(value != step * 10 + toUInt8(substring(key, 2))) FROM metrics FINAL "
        " WHERE run_id = {r:String}) AS wrong", r=run_id)[0]


def health(address: str) -> str:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def assert_exact(server: Ingest, run_id: str, steps: int, keys: int = 10) -> None:
    c = counts(server, run_id)
    assert c == {"final": steps * keys, "distinct_points": steps * keys, "steps": steps, "wrong": 0}, c


def test_ingest_killed_three_times_mid_stream_loses_and_duplicates_nothing(fresh_ingest, tmp_path, monkeypatch):
    fresh_ingest.start()
    monkeypatch.setenv("PULSE_SERVER", fresh_ingest.address)
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
    monkeypatch.setenv("PULSE_FINISH_TIMEOUT", "120")
    run = emitter.init(project=f"kill3-{uuid.uuid4().hex[:6]}")
    for step in range(40_000):
        emitter.log({f"k{j}": step * 10 + j for j in range(10)})
        if step % 10_000 == 5_000:
            wait_for(lambda: run.spool.acked > 0, what="acks before the kill")
            fresh_ingest.kill()
        if step % 10_000 == 7_000:
            fresh_ingest.start()
        if step % 200 == 0:
            time.sleep(0.005)
    emitter.finish()
    assert run.transport.reconnects >= 4
    assert_exact(fresh_ingest, run.id, 40_000)
    assert fresh_ingest.run_row(run.project, run.id)["state"] == "finished"


def test_store_failing_inserts_for_20s_is_buffered_pushed_back_and_retried(tmp_path, monkeypatch):
    server = Ingest(tmp_path / "data", "--max-buffer-rows", "30000", port=None,
                    command=[sys.executable, str(ROOT / "tests/faults/flaky_ingest.py"), "--fail-after", "1",
                             "--fail-for", "20", "--"]).start()
    try:
        monkeypatch.setenv("PULSE_SERVER", server.address)
        monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
        monkeypatch.setenv("PULSE_FINISH_TIMEOUT", "120")
        run = emitter.init(project=f"flaky-{uuid.uuid4().hex[:6]}")
        steps = 0
        health_during_outage = set()
        deadline = time.monotonic() + 26  # across the whole outage and past it
        while time.monotonic() < deadline:
            emitter.log({f"k{j}": steps * 10 + j for j in range(10)})
            steps += 1
            if steps % 100 == 0:
                time.sleep(0.05)
            if steps % 2000 == 0 and "flaky store: failing" in server.log_path.read_text():
                health_during_outage.add(health(server.address))
        emitter.finish()
        log = server.log_path.read_text()
        assert "flaky store: failing inserts for 20 s" in log
        assert "retrying until it succeeds" in log and "store recovered" in log
        assert run.transport.last_error.startswith("UNAVAILABLE")  # it pushed back
        assert "NOT_SERVING" in health_during_outage  # so a balancer sends new streams elsewhere
        assert health(server.address) == "SERVING"
        assert_exact(server, run.id, steps)
        assert server.run_row(run.project, run.id)["state"] == "finished"
    finally:
        server.stop()


def test_killed_trainer_leaves_its_unacknowledged_points_on_disk_for_pulse_sync(fresh_ingest, tmp_path):
    fresh_ingest.start()
    project = f"killed-{uuid.uuid4().hex[:6]}"
    env = {"PULSE_SERVER": fresh_ingest.address, "PULSE_DIR": str(tmp_path / "pulse"), "FAULT_PROJECT": project}
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER, "1000000", "0.0002"], env={**__import__("os").environ,
                               **env}, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    run_id = trainer.stdout.readline().split()[1]
    wait_for(lambda: fresh_ingest.scalar("SELECT count() FROM metrics WHERE run_id = {r:String}", r=run_id) > 5000,
             what="points acknowledged before the kill")
    fresh_ingest.kill()  # the server goes away, so the trainer's spool fills with unacknowledged batches
    time.sleep(1.0)
    trainer.send_signal(signal.SIGKILL)
    trainer.wait(30)
    fresh_ingest.start()
    before = counts(fresh_ingest, run_id)
    spooled = list((tmp_path / "pulse" / "spool").glob("*/*.wal"))
    assert spooled, "the unacknowledged batches are on disk"

    row = wait_for(lambda: (r := fresh_ingest.run_row(project, run_id)) and r["state"] == "crashed" and r,
                   timeout=60, what="the run to be marked crashed")
    assert "heartbeat" in row["error"]
    synced = run_script("from pulse.cli import main; raise SystemExit(main(['sync']))", env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    after = counts(fresh_ingest, run_id)
    assert after["final"] > before["final"]  # the spool held points the server never had
    # What was stored is exactly a prefix of what was logged: nothing lost, nothing twice.
    assert after["final"] == after["distinct_points"] == after["steps"] * 10 and after["wrong"] == 0
    assert fresh_ingest.run_row(project, run_id)["state"] == "crashed"


def test_full_spool_drops_points_loudly_keeps_the_run_and_never_blocks(fresh_ingest, tmp_path):
    project = f"spoolfull-{uuid.uuid4().hex[:6]}"
    # System samples every 50 ms land in dropped batches too: they are counted apart, not as metric points.
    env = {"PULSE_SERVER": fresh_ingest.address, "PULSE_DIR": str(tmp_path / "pulse"), "PULSE_SPOOL_MAX_MB": "1",
           "PULSE_FINISH_TIMEOUT": "2", "PULSE_SYSTEM_INTERVAL": "0.05"}
    done = run_script(f"""
        import emitter
        run = emitter.init(project={project!r})
        for step in range(100_000):   # about 20 MB of batches; the server is down, the spool holds 1 MB
            emitter.log({{f"k{{j}}": step * 10 + j for j in range(10)}})
        emitter.finish()
        print("RUN", run.id, run.stats()["dropped_points"], run.stats()["dropped_records"])
    """, env)
    assert done.returncode == 0, done.stderr
    run_id, dropped, dropped_records = done.stdout.split("RUN ")[1].split()
    assert int(dropped) > 0 and int(dropped_records) > 0
    assert "DROPPING metric points" in done.stderr and "PULSE_SPOOL_MAX_MB" in done.stderr
    assert "DROPPED because the spool was full" in done.stderr
    fresh_ingest.start()
    synced = run_script("from pulse.cli import main; raise SystemExit(main(['sync']))", env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    stored = counts(fresh_ingest, run_id)["final"]
    assert stored + int(dropped) == 1_000_000  # every point is either stored or counted as dropped
    row = fresh_ingest.run_row(project, run_id)
    assert row["state"] == "finished"
    assert json.loads(row["summary"])["_pulse/dropped_points"] == int(dropped)


def test_twenty_emitters_for_sixty_seconds_with_an_ingest_restart(fresh_ingest, tmp_path):
    fresh_ingest.start()
    project = f"twenty-{uuid.uuid4().hex[:6]}"
    env = {**__import__("os").environ, "PULSE_SERVER": fresh_ingest.address, "PULSE_DIR": str(tmp_path / "pulse"),
           "FAULT_PROJECT": project, "PULSE_FINISH_TIMEOUT": "120"}
    # 60 s of steps at about 200 steps/s each (2,000 points/s per emitter).
    trainers = [subprocess.Popen([sys.executable, "-c", TRAINER, "12000", "0.005"], env=env, stdout=subprocess.PIPE,
                                 text=True, cwd=ROOT) for _ in range(20)]
    run_ids = [t.stdout.readline().split()[1] for t in trainers]
    time.sleep(25)
    fresh_ingest.kill()
    time.sleep(3)
    fresh_ingest.start()
    results = []
    for trainer in trainers:
        out, _ = trainer.communicate(timeout=300)
        assert trainer.returncode == 0
        results.append(int(out.split("DONE ")[1]))
    for run_id, steps in zip(run_ids, results):
        assert_exact(fresh_ingest, run_id, steps)
        assert fresh_ingest.run_row(project, run_id)["state"] == "finished"


def test_records_a_killed_trainer_spilled_past_its_queue_bound_are_uploaded_by_pulse_sync(emitter_env, tmp_path):
    from emitter.overflow import TAKING, read_overflow
    from emitter.spool import OVERFLOW, Spool
    from pulse.v1 import telemetry_pb2 as pb

    project = f"spilled-{uuid.uuid4().hex[:6]}"
    trainer = """
        import os, signal, emitter
        run = emitter.init(project=os.environ["FAULT_PROJECT"])
        print("RUN", run.id, flush=True)
        for step in range(200_000):  # far past a queue of 1,000 values: most records spill to overflow.pkl
            emitter.log({f"k{j}": step * 10 + j for j in range(10)})
        os.kill(os.getpid(), signal.SIGKILL)
    """
    for attempt in range(3):  # the sender takes the file when it wakes: a kill right after that leaves none
        pulse_dir = tmp_path / f"pulse{attempt}"
        env = {"PULSE_MODE": "offline", "PULSE_DIR": str(pulse_dir), "PULSE_QUEUE_MAX_VALUES": "1000",
               "FAULT_PROJECT": project}
        killed = run_script(trainer, env)
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        [stream] = (pulse_dir / "spool").iterdir()
        if (stream / OVERFLOW).exists():
            break
    run_id = killed.stdout.split("RUN ")[1].split()[0]

    # What the kill left on disk: encoded batches, and records never encoded
    spool, encoded = Spool(stream), set()
    entry = spool.after(0, 0)
    while entry is not None:
        encoded.update(pb.Batch.FromString(spool.read(entry)).scalars.step)
        entry = spool.after(entry.seq, 0)
    spool.close(remove_if_empty=False)
    # A kill while the sender takes the file leaves its rows in TAKING (and maybe the spool too)
    spilled = {step for name in (OVERFLOW, TAKING) if (stream / name).exists()
               for step, _, _ in read_overflow((stream / name).read_bytes())[2]}
    assert spilled - encoded, "the overflow file holds steps no batch has"

    synced = run_script("from pulse.cli import main; raise SystemExit(main(['sync']))",
                        {**env, "PULSE_SERVER": emitter_env.address})
    assert synced.returncode == 0, synced.stdout + synced.stderr
    stored = emitter_env.query("SELECT step, count() AS keys, countIf(value != step * 10 + toUInt8(substring(key, "
                               "2))) AS wrong FROM metrics FINAL WHERE run_id = {r:String} GROUP BY step", r=run_id)
    assert {r["step"] for r in stored} == encoded | spilled
    assert all(r["keys"] == 10 and r["wrong"] == 0 for r in stored)
    assert not (pulse_dir / "spool").exists() or not any((pulse_dir / "spool").iterdir())
