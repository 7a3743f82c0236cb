"""Sweeps from Python: `emitter.sweep()` and `emitter.agent(function=...)` against a real ingest on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from test_sweeps_agents import agent, finish, runs, sweep_state, trials, workdir

import emitter
from conftest import ROOT


def project() -> str:
    return f"pysweep-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def python_agent_env(emitter_env, monkeypatch):
    monkeypatch.setenv("PULSE_AGENT_HEARTBEAT", "0.5")
    monkeypatch.setenv("PULSE_SYSTEM_INTERVAL", "0")
    return emitter_env


def test_function_trials_run_in_process_each_in_its_own_run_with_the_config_merged_and_locked(python_agent_env):
    ingest = python_agent_env
    name = project()
    sweep_id = emitter.sweep({"method": "grid", "metric": {"name": "loss"}, "parameters": {
        "lr": {"values": [0.1, 0.01, 0.001]}, "layers": {"value": [64, 32]}}}, project=name)
    seen = []

    def train():
        run = emitter.init(project="the-functions-own-project", config={"lr": "a default", "epochs": 2})
        seen.append((run.id, run.config.lr, run.config.layers, run.config.epochs, os.getpid()))
        for step in range(3):
            emitter.log({"loss": run.config.lr * 10 + 1 / (step + 1)})

    emitter.agent(sweep_id, function=train)
    assert [lr for _, lr, _, _, _ in seen] == [0.1, 0.01, 0.001]  # grid order: names sorted, values as given
    assert {pid for *_, pid in seen} == {os.getpid()}  # in this process
    assert all(layers == [64, 32] and epochs == 2 for _, _, layers, epochs, _ in seen)
    rows = trials(ingest, sweep_id)
    assert [r["run_id"] for r in rows] == [run_id for run_id, *_ in seen]
    assert {r["state"] for r in rows} == {"finished"}
    by_run = runs(ingest, sweep_id)
    for row in rows:
        run = by_run[row["run_id"]]
        config = json.loads(run["config"])
        assert run["project"] == name and run["state"] == "finished"
        assert config["lr"] == json.loads(row["params"])["lr"] and config["epochs"] == 2  # merged, locked
        assert row["objective"] == pytest.approx(json.loads(run["summary"])["loss"])
    assert sweep_state(ingest, sweep_id) == "finished"
    assert emitter.run is None and "PULSE_SWEEP_ID" not in os.environ  # the agent leaves no sweep behind


def test_a_failing_function_fails_its_trial_and_the_agent_goes_on_until_count(python_agent_env, capsys):
    ingest = python_agent_env
    sweep_id = emitter.sweep({"method": "random", "parameters": {"x": {"values": [1, 2]}}}, project=project())
    calls = []

    def train():
        run = emitter.init()
        calls.append(run.config.x)
        if len(calls) == 1:
            raise RuntimeError("diverged at step 0")
        emitter.log({"loss": 1.0})

    emitter.agent(sweep_id, function=train, count=3)
    assert len(calls) == 3
    rows = trials(ingest, sweep_id)
    assert [r["state"] for r in rows] == ["failed", "finished", "finished"]
    by_run = runs(ingest, sweep_id)
    assert by_run[rows[0]["run_id"]]["state"] == "failed"
    assert "RuntimeError: diverged at step 0" in by_run[rows[0]["run_id"]]["error"]
    assert "RuntimeError: diverged at step 0" in capsys.readouterr().err  # the traceback, as W&B prints it


def test_hyperband_stops_an_in_process_trial_with_trial_stopped(python_agent_env):
    ingest = python_agent_env
    sweep_id = emitter.sweep({"method": "grid", "metric": {"name": "loss"},
                              "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
                              "parameters": {"quality": {"values": [0, 1, 5]}}}, project=project())
    outcome = {}

    def train():
        run = emitter.init()
        try:
            for step in range(4 if run.config.quality < 5 else 3):  # 0 and 1 set the bar at band 2: 1.5
                emitter.log({"loss": run.config.quality + 1 / (step + 1)})
            if run.config.quality == 5:
                for _ in range(1200):  # a slow 4th epoch (60 s): judged at band 2 meanwhile
                    time.sleep(0.05)
        except emitter.sweeps.TrialStopped:
            outcome[run.config.quality] = "stopped"
            raise
        outcome[run.config.quality] = "completed"

    started = time.monotonic()
    emitter.agent(sweep_id, function=train)
    assert outcome == {0: "completed", 1: "completed", 5: "stopped"}
    assert time.monotonic() - started < 50  # stopped well before its epoch ended
    rows = {json.loads(r["params"])["quality"]: r for r in trials(ingest, sweep_id)}
    assert (rows[0]["state"], rows[1]["state"], rows[5]["state"]) == ("finished", "finished", "killed")
    run = runs(ingest, sweep_id)[rows[5]["run_id"]]
    assert run["state"] == "killed" and run["error"].startswith("hyperband: loss value at the band"), run


def test_python_and_cli_agents_share_a_grid_and_never_run_a_point_twice(python_agent_env, tmp_path):
    ingest = python_agent_env
    cwd = workdir(tmp_path)
    # The CLI agent runs train.py; the Python agent calls train() here. Both claim from the controller.
    sweep_id = emitter.sweep({"program": "train.py", "method": "grid", "metric": {"name": "loss"}, "parameters": {
        "quality": {"values": list(range(8))}, "steps": {"value": 3}, "sleep": {"value": 0.3}}}, project=project())
    cli = agent(ingest.address, sweep_id, cwd)
    mine = []

    def train():
        run = emitter.init()
        mine.append(run.config.quality)
        for step in range(run.config.steps):
            emitter.log({"loss": run.config.quality + 1 / (step + 1)})
            time.sleep(run.config.sleep)

    emitter.agent(sweep_id, function=train)
    output = finish(cli)
    assert cli.returncode == 0, output
    rows = trials(ingest, sweep_id)
    assert sorted(json.loads(r["params"])["quality"] for r in rows) == list(range(8))
    assert sorted(r["grid_index"] for r in rows) == list(range(8))
    assert {r["state"] for r in rows} == {"finished"}
    assert mine and len(mine) < 8, "the work was not shared"
    assert sweep_state(ingest, sweep_id) == "finished"


def test_sweep_refuses_a_bad_config_and_agent_a_project_that_is_not_the_sweeps(python_agent_env):
    with pytest.raises(ValueError, match="probabilities do not apply"):
        emitter.sweep({"method": "grid", "parameters": {"a": {"values": [1, 2], "probabilities": [0.5, 0.5]}}})
    sweep_id = emitter.sweep(lambda: {"method": "random", "parameters": {"a": {"value": 1}}}, project=project())
    with pytest.raises(ValueError, match="is in project"):
        emitter.agent(sweep_id, function=lambda: None, project="another-project")
    with pytest.raises(ValueError, match="no sweep"):
        emitter.agent("nosuchid", function=lambda: None)


def test_a_sweep_without_program_is_accepted_and_pulse_agent_points_to_python(python_agent_env, tmp_path):
    ingest = python_agent_env
    path = tmp_path / "sweep.yaml"
    path.write_text("method: random\nparameters:\n  a: {values: [1, 2]}\n")
    env = dict(os.environ, PULSE_SERVER=ingest.address)
    created = subprocess.run([sys.executable, "-m", "pulse.cli", "sweep", str(path), "--project", project()],
                             env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert created.returncode == 0, created.stderr
    sweep_id = created.stdout.strip().splitlines()[-1].split()[-1]
    assert f"emitter.agent('{sweep_id}', function=train)" in created.stdout
    refused = subprocess.run([sys.executable, "-m", "pulse.cli", "agent", sweep_id], env=env,
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert refused.returncode == 2 and "emitter.agent(sweep_id, function=train)" in refused.stderr
    assert trials(ingest, sweep_id) == []  # nothing was claimed
