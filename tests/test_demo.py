"""`pulse demo`: its numpy trainer logs through a real ingest, and stopping the demo ends its runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import Ingest, free_port, wait_for
from pulse.client import QueryClient

METRICS = ["train/acc", "train/loss", "val/acc", "val/loss"]


def stop(process: subprocess.Popen, sig: int) -> int:
    process.send_signal(sig)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def runs(client: QueryClient, project: str) -> list[dict]:
    return client.query("SELECT run_id, name, state, config, sweep_id FROM runs FINAL WHERE project = {p:String}",
                        {"p": project}).to_pylist()


def point_counts(client: QueryClient, project: str) -> dict[str, int]:
    table = client.query("SELECT key, count() AS n FROM metrics FINAL WHERE project = {p:String} GROUP BY key",
                         {"p": project})
    return dict(zip(table.column("key").to_pylist(), table.column("n").to_pylist()))


def test_demo_trainer_logs_its_metrics_and_finishes(ingest: Ingest, tmp_path: Path) -> None:
    project = f"demo-{uuid.uuid4().hex[:8]}"
    trainer = subprocess.run(
        [sys.executable, "-m", "pulse.demo", "--train", "--steps", "50", "--sleep", "0", "--seed", "2",
         "--server", ingest.address, "--project", project],
        env=dict(os.environ, PULSE_DIR=str(tmp_path / "spool")), cwd=tmp_path,
        capture_output=True, text=True, timeout=300)
    assert trainer.returncode == 0, trainer.stderr
    client = QueryClient(ingest.address)
    [run] = runs(client, project)
    assert run["state"] == "finished"
    assert run["name"] == "mlp-lr0.03-s2"
    assert '"lr": 0.03' in run["config"]
    counts = point_counts(client, project)
    assert sorted(counts) == METRICS
    assert counts["train/loss"] == counts["train/acc"] == 50
    assert counts["val/loss"] == counts["val/acc"] == 4  # steps 0, 20, 40 and the last


def test_stopping_pulse_demo_ends_its_runs_as_killed(tmp_path: Path) -> None:
    """Ctrl-C on `pulse demo` stops the trainers and the sweep agents' trials while the ingest still
    takes their last words."""
    port, ui_port = free_port(), free_port()
    output = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "pulse.cli", "demo", "--data", str(tmp_path / "data"), "--host", "127.0.0.1",
         "--port", str(port), "--ui-port", str(ui_port), "--runs", "2"],
        env=dict(os.environ, PULSE_DIR=str(tmp_path / "spool")), cwd=tmp_path,
        stdout=output.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "pulse: ingest listening on" in output.read_text() or demo.poll() is not None,
                 timeout=120, what="the demo's ingest")
        assert demo.poll() is None, output.read_text()
        address = f"127.0.0.1:{port}"
        client = QueryClient(address)
        def demo_and_sweep_running() -> bool:
            states = [(bool(r["sweep_id"]), r["state"]) for r in runs(client, "demo")]
            return (len(point_counts(client, "demo")) >= len(METRICS)
                    and states.count((False, "running")) == 3 and (True, "running") in states)

        wait_for(demo_and_sweep_running, timeout=180,
                 what="two demo runs, the live run and a sweep trial running with metrics")
        assert "pulse demo: sweep" in output.read_text() and "with 2 agents" in output.read_text()
        assert f"http://127.0.0.1:{ui_port}/?project=demo" in output.read_text()
    finally:
        code = stop(demo, signal.SIGINT)
    assert code == 0, output.read_text()

    reopened = Ingest(tmp_path / "data").start()  # the same store, to read how the runs ended
    try:
        ended = runs(QueryClient(reopened.address), "demo")
        plain = [r for r in ended if not r["sweep_id"]]
        assert sorted(r["state"] for r in plain) == ["killed", "killed", "killed"], ended
        assert sorted(r["name"] for r in plain) == ["live-mlp", "mlp-lr0.1-s1", "mlp-lr0.3-s0"]
        trials = [r for r in ended if r["sweep_id"]]
        assert trials and {r["state"] for r in trials} <= {"killed", "finished"}, trials
    finally:
        reopened.stop()


def test_the_live_run_logs_what_every_page_shows(ingest: Ingest, tmp_path: Path) -> None:
    """Curves, images, histograms, an alert, system samples and (torch being installed here) watch()'s graph."""
    project = f"live-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, "-m", "pulse.demo", "--live", "--live-steps", "420", "--sleep", "0",
         "--server", ingest.address, "--project", project],
        env=dict(os.environ, PULSE_DIR=str(tmp_path / "spool"), PULSE_SYSTEM_INTERVAL="0.2"), cwd=tmp_path,
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    client = QueryClient(ingest.address)
    [run] = runs(client, project)
    assert (run["name"], run["state"]) == ("live-mlp", "finished")
    counts = point_counts(client, project)
    assert set(METRICS) | {"torch/loss"} <= set(counts) and counts["train/loss"] == 420

    def count(table: str, extra: str = "") -> int:
        sql = f"SELECT count() AS n FROM {table} WHERE project = {{p:String}} {extra}"
        return client.query(sql, {"p": project}).column("n")[0].as_py()

    assert count("media", "AND kind = 'image' AND key = 'decision_regions'") == 5  # steps 0, 100, ... 400
    assert count("histograms", "AND key = 'hidden/activations'") == 5
    assert count("histograms", "AND startsWith(key, 'gradients/')") > 0  # watch()
    assert count("model_graphs") == 1 and count("system_metrics") > 0
    assert count("alerts", "AND title = 'Spiral learned'") == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_demo_model_learns_the_spiral(seed: int) -> None:
    import numpy as np

    from pulse.demo import MLP, spiral

    rng = np.random.default_rng(seed)
    x, y = spiral(300, 3, rng)
    model = MLP(2, 64, 3, rng)
    first, _ = model.loss_and_accuracy(x, y)
    for _ in range(400):
        model.loss_and_accuracy(x, y, lr=0.3)
    last, accuracy = model.loss_and_accuracy(x, y)
    assert last < first / 2
    assert accuracy > 0.8
