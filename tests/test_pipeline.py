"""End to end: emitter -> gRPC -> ingest -> chDB, through real processes on loopback."""

from __future__ import annotations

import os
import threading
import time
import uuid

import pytest

import emitter
from conftest import run_script, wait_for
from dashboard.queries import DURATION


def project() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def test_fifty_thousand_steps_of_ten_keys_are_all_stored_exactly(emitter_env):
    name = project()
    run = emitter.init(project=name)
    for step in range(50_000):
        emitter.log({f"k{j}": step * 10 + j + 0.25 for j in range(10)})
    emitter.finish()

    rows = emitter_env.query(
        "SELECT count() AS n, uniqExact(key, step) AS distinct_points, "
        "countIf(value != step * 10 + toUInt8(substring(key, 2)) + 0.25) AS wrong "
        "FROM metrics FINAL WHERE project = {p:String} AND run_id = {r:String}", p=name, r=run.id)
    assert rows == [{"n": 500_000, "distinct_points": 500_000, "wrong": 0}]
    assert emitter_env.run_row(name, run.id)["state"] == "finished"


def test_ingest_killed_mid_stream_and_restarted_stores_every_point_once(fresh_ingest, tmp_path, monkeypatch):
    fresh_ingest.start()
    monkeypatch.setenv("PULSE_SERVER", fresh_ingest.address)
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
    monkeypatch.setenv("PULSE_FINISH_TIMEOUT", "120")
    name = project()
    run = emitter.init(project=name)
    steps = 30_000
    for step in range(steps):
        emitter.log({"a": float(step), "b": step * 2.0, "c": -step})
        if step in (10_000, 20_000):
            wait_for(lambda: run.spool.acked > 0, what="some batches acknowledged")
            fresh_ingest.kill()
        if step in (12_000, 22_000):
            fresh_ingest.start()
        if step % 500 == 0:
            time.sleep(0.01)  # a training step's worth of time, so the kill lands mid-stream
    emitter.finish()

    counts = fresh_ingest.query(
        "SELECT (SELECT count() FROM metrics FINAL WHERE run_id = {r:String}) AS final_count, "
        "(SELECT uniqExact(key, step) FROM metrics WHERE run_id = {r:String}) AS distinct_count, "
        "(SELECT sum(value) FROM metrics FINAL WHERE run_id = {r:String} AND key = 'b') AS b_sum",
        r=run.id)[0]
    assert counts["final_count"] == counts["distinct_count"] == 3 * steps
    assert counts["b_sum"] == sum(step * 2.0 for step in range(steps))
    assert fresh_ingest.run_row(name, run.id)["state"] == "finished"


def test_server_unreachable_at_init_never_blocks_training_and_delivers_once_up(fresh_ingest, tmp_path,
                                                                               monkeypatch):
    monkeypatch.setenv("PULSE_SERVER", fresh_ingest.address)  # nothing listens there yet
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
    monkeypatch.setenv("PULSE_FINISH_TIMEOUT", "120")
    name = project()
    run = emitter.init(project=name)
    # The whole loop runs while the server is down: if log() waited for it, this would hang.
    for step in range(20_000):
        emitter.log({"loss": 1.0 / (step + 1), "acc": step / 20_000})
    assert run._batcher.flush(30)
    assert run.transport.connected.is_set() is False
    assert run.spool.pending > 0  # encoded and on disk, waiting for the server
    fresh_ingest.start()
    emitter.finish()
    assert fresh_ingest.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String}", r=run.id) == 40_000
    assert fresh_ingest.run_row(name, run.id)["state"] == "finished"


def test_server_never_up_finish_returns_and_pulse_sync_uploads_later(fresh_ingest, tmp_path):
    pulse_dir = tmp_path / "pulse"
    env = {"PULSE_SERVER": fresh_ingest.address, "PULSE_DIR": str(pulse_dir),
           "PULSE_FINISH_TIMEOUT": "2"}
    name = project()
    done = run_script(f"""
        import emitter
        run = emitter.init(project={name!r})
        for step in range(1000):
            emitter.log({{"loss": step * 0.5}})
        emitter.finish()
        print("RUN", run.id)
    """, env)
    assert done.returncode == 0, done.stderr
    assert "pulse sync" in done.stderr  # says where the data is and what to do
    run_id = done.stdout.split("RUN ")[1].strip()

    fresh_ingest.start()
    synced = run_script("from pulse.cli import main; raise SystemExit(main(['sync']))", env)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "uploaded" in synced.stdout
    assert fresh_ingest.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String}", r=run_id) == 1000
    assert fresh_ingest.run_row(name, run_id)["state"] == "finished"
    assert not any(pulse_dir.glob("spool/*/*.wal"))


def test_offline_run_is_uploaded_by_pulse_sync(emitter_env, tmp_path):
    pulse_dir = tmp_path / "offline"
    env = {"PULSE_DIR": str(pulse_dir), "PULSE_MODE": "offline", "PULSE_SERVER": "127.0.0.1:1"}
    name = project()
    done = run_script(f"""
        import emitter
        run = emitter.init(project={name!r}, config={{"lr": 0.5}})
        for step in range(300):
            emitter.log({{"loss": 1.0 / (step + 1)}})
        emitter.finish()
        print("RUN", run.id)
    """, env)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split("RUN ")[1].strip()
    assert emitter_env.run_row(name, run_id) is None  # nothing was sent

    time.sleep(0.05)
    sync_started_us = time.time_ns() // 1000
    synced = run_script("from pulse.cli import main; raise SystemExit(main(['sync']))",
                        {**env, "PULSE_SERVER": emitter_env.address})
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert emitter_env.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String}", r=run_id) == 300
    row = emitter_env.run_row(name, run_id)
    assert row["state"] == "finished" and '"lr": 0.5' in row["config"]
    # it ended when it finished, before the upload began, and its duration says so
    [times] = emitter_env.query(f"SELECT toUnixTimestamp64Micro(created_at) AS created, toUnixTimestamp64Micro("
                                f"heartbeat_at) AS ended, {DURATION} AS duration_s FROM runs FINAL "
                                "WHERE run_id = {r:String}", r=run_id)
    assert times["created"] < times["ended"] < sync_started_us
    assert times["duration_s"] == pytest.approx((times["ended"] - times["created"]) / 1e6, abs=0.002)


def test_disabled_mode_logs_nothing_and_never_touches_disk(emitter_env, tmp_path, monkeypatch):
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "disabled"))
    run = emitter.init(project=project(), mode="disabled")
    emitter.log({"loss": 1.0})
    emitter.finish()
    assert not (tmp_path / "disabled").exists()
    assert emitter_env.query("SELECT count() AS n FROM runs WHERE run_id = {r:String}", r=run.id) == [{"n": 0}]


def test_training_loop_thread_is_free_while_sender_streams(emitter_env):
    """log() only appends: a loop on another thread keeps going while batches stream."""
    name = project()
    run = emitter.init(project=name)
    counts = []

    def loop():
        for step in range(5000):
            run.log({"x": step})
        counts.append(run.step)

    thread = threading.Thread(target=loop)
    thread.start()
    thread.join(120)
    emitter.finish()
    assert counts == [5000]
    assert emitter_env.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String}", r=run.id) == 5000


def test_run_that_stops_heartbeating_is_marked_crashed(emitter_env):
    name = project()
    started = run_script(f"""
        import os, emitter
        run = emitter.init(project={name!r})
        emitter.log({{"loss": 1.0}})
        run._batcher.flush(10)
        run.spool.wait_acked(30)
        print("RUN", run.id, flush=True)
        os._exit(0)  # dies without finishing, like a SIGKILL
    """, {})
    assert started.returncode == 0, started.stderr
    run_id = started.stdout.split("RUN ")[1].strip()
    assert emitter_env.run_row(name, run_id)["state"] == "running"
    row = wait_for(lambda: (r := emitter_env.run_row(name, run_id)) and r["state"] == "crashed" and r,
                   timeout=60, what="the run to be marked crashed")
    assert "heartbeat" in row["error"]


def test_backpressure_pushes_back_and_loses_nothing(fresh_ingest, tmp_path, monkeypatch):
    fresh_ingest.args += ["--max-buffer-rows", "2000", "--flush-interval", "1.0"]
    fresh_ingest.start()
    monkeypatch.setenv("PULSE_SERVER", fresh_ingest.address)
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
    monkeypatch.setenv("PULSE_FINISH_TIMEOUT", "120")
    run = emitter.init(project=project())
    for step in range(4000):
        emitter.log({"a": step, "b": step, "c": step})
        if step % 200 == 199:
            time.sleep(0.15)  # several batches inside one ingest flush interval
    emitter.finish()
    assert "UNAVAILABLE" in run.transport.last_error  # it was pushed back ...
    assert "retry after" in run.transport.last_error
    # ... and still delivered everything
    assert fresh_ingest.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String}",
                               r=run.id) == 12_000


def test_environment_picks_server_and_project(emitter_env, monkeypatch):
    name = project()
    monkeypatch.setenv("PULSE_PROJECT", name)
    run = emitter.init()
    assert run.project == name
    emitter.log({"x": 1})
    emitter.finish()
    assert emitter_env.run_row(name, run.id)["state"] == "finished"
    assert os.environ["PULSE_SERVER"] == emitter_env.address
