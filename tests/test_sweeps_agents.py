"""Sweeps end to end: real `pulse agent` processes running a real program against a real ingest on loopback."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from conftest import ROOT, wait_for
from pulse.sweep_client import SweepClient

# The sweep's program: reads --name=value arguments (JSON values), logs `loss` for `steps` steps.
TRAIN = r'''
import json, os, sys, time

import emitter

args = {}
for arg in sys.argv[1:]:
    name, _, text = arg.lstrip("-").partition("=")
    try:
        args[name] = json.loads(text)
    except ValueError:
        args[name] = text
if args.get("fail"):
    sys.exit(3)

run = emitter.init(project="the-scripts-own-project", config={name: "script default" for name in args})
emitter.config.update({"gpu": os.environ.get("CUDA_VISIBLE_DEVICES", "none")})
if args.get("ignore_sigterm"):
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
quality = float(args.get("quality", 0))
if "x" in args:
    quality += (args["x"] - 3) ** 2 + {"a": 0, "b": 1, "c": 2}[args["opt"]]
steps = int(args.get("steps", 3))
for t in range(steps):
    emitter.log({"loss": quality + 1 / (t + 1)})
    time.sleep(float(args.get("sleep", 0)))

if args.get("ask_hyperband"):
    # Once every point is in the store, ask the controller what the agent will hear at its next
    # heartbeat; a trial to be stopped waits here for the agent's SIGTERM.
    from pulse.client import QueryClient
    from pulse.sweep_client import SweepClient

    count = "SELECT count() AS n FROM metrics FINAL WHERE run_id = {r:String} AND key = 'loss'"
    while QueryClient().query(count, {"r": run.id}).to_pylist()[0]["n"] < steps:
        time.sleep(0.1)
    if SweepClient().should_stop(os.environ["PULSE_SWEEP_ID"], run.id).stop:
        time.sleep(300)
emitter.finish()
'''


def project() -> str:
    return f"sweep-{uuid.uuid4().hex[:8]}"


def workdir(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(TRAIN)
    return tmp_path


def create(server: str, config: dict, name: str | None = None) -> str:
    client = SweepClient(server)
    try:
        return client.create(name or project(), {"program": "train.py", **config}).sweep_id
    finally:
        client.close()


def agent(server: str, sweep_id: str, cwd: Path, *args: str) -> subprocess.Popen:
    log = open(cwd / f"agent-{uuid.uuid4().hex[:6]}.log", "w")
    # ${interpreter} is the word `python`, as in W&B; these trials need this test's interpreter instead.
    env = dict(os.environ, PULSE_SERVER=server, PULSE_DIR=str(cwd / "pulse"), PULSE_AGENT_HEARTBEAT="0.5",
               PULSE_FINISH_TIMEOUT="120", PYTHONPATH=str(ROOT), PULSE_SWEEP_INTERPRETER=sys.executable)
    env.pop("PULSE_MODE", None)
    process = subprocess.Popen([sys.executable, "-m", "pulse.cli", "agent", sweep_id, "--kill-grace", "20", *args],
                               cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.log_path = Path(log.name)  # type: ignore[attr-defined]
    return process


def finish(process: subprocess.Popen, timeout: float = 400) -> str:
    """Wait for an agent; return its output."""
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.log_path.read_text()  # type: ignore[attr-defined]


def trials(ingest, sweep_id: str) -> list[dict]:
    return ingest.query("SELECT * FROM sweep_trials FINAL WHERE sweep_id = {s:String} ORDER BY seq", s=sweep_id)


def runs(ingest, sweep_id: str) -> dict[str, dict]:
    rows = ingest.query("SELECT run_id, project, state, error, config, summary FROM runs FINAL "
                        "WHERE sweep_id = {s:String}", s=sweep_id)
    return {row["run_id"]: row for row in rows}


def sweep_state(ingest, sweep_id: str) -> str:
    return ingest.scalar("SELECT state FROM sweeps FINAL WHERE sweep_id = {s:String}", s=sweep_id)


def overlapping(rows: list[dict]):
    for a, b in itertools.combinations(rows, 2):
        if a["claimed_at"] < b["ended_at"] and b["claimed_at"] < a["ended_at"]:
            yield a, b


def test_three_agents_run_each_point_of_a_4x3_grid_exactly_once(ingest, tmp_path):
    cwd = workdir(tmp_path)
    name = project()
    sweep_id = create(ingest.address, {"method": "grid", "metric": {"name": "loss"}, "parameters": {
        "lr": {"values": [0.1, 0.01, 0.001, 0.0001]}, "batch_size": {"values": [16, 32, 64]},
        "sleep": {"value": 0.1}}}, name)
    agents = [agent(ingest.address, sweep_id, cwd) for _ in range(3)]
    outputs = [finish(a) for a in agents]
    assert [a.returncode for a in agents] == [0, 0, 0], outputs

    rows = trials(ingest, sweep_id)
    points = [(json.loads(r["params"])["lr"], json.loads(r["params"])["batch_size"]) for r in rows]
    assert sorted(points) == sorted(itertools.product([0.1, 0.01, 0.001, 0.0001], [16, 32, 64]))
    assert sorted(r["grid_index"] for r in rows) == list(range(12))
    assert {r["state"] for r in rows} == {"finished"}
    assert len({r["agent_id"] for r in rows}) > 1  # the work was shared

    by_run = runs(ingest, sweep_id)
    assert set(by_run) == {r["run_id"] for r in rows}
    for row in rows:
        run = by_run[row["run_id"]]
        config = json.loads(run["config"])
        assert run["state"] == "finished" and run["project"] == name  # the sweep's project, not the script's
        assert {k: config[k] for k in ("lr", "batch_size")} == {k: json.loads(row["params"])[k]
                                                                 for k in ("lr", "batch_size")}  # locked
        assert row["objective"] == json.loads(run["summary"])["loss"]
    assert sweep_state(ingest, sweep_id) == "finished"


def test_pulse_sweep_prints_the_agent_command_last_and_names_config_errors(ingest, tmp_path):
    env = dict(os.environ, PULSE_SERVER=ingest.address)
    good = tmp_path / "sweep.yaml"
    good.write_text((ROOT / "tests" / "fixtures" / "sweep.yaml").read_text())
    done = subprocess.run([sys.executable, "-m", "pulse.cli", "sweep", str(good), "--project", project()],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("pulse agent ") and "16 trials" in done.stdout
    sweep_id = last.split()[-1]
    assert sweep_state(ingest, sweep_id) == "running"

    stop = subprocess.run([sys.executable, "-m", "pulse.cli", "sweep", "--stop", sweep_id], env=env,
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert stop.returncode == 0 and "stopped" in stop.stdout
    assert sweep_state(ingest, sweep_id) == "stopped"

    bad = tmp_path / "bad.yaml"
    bad.write_text("program: train.py\nmethod: grid\nparameters:\n  lr: {min: 0.001, max: 0.1}\n  bs: {valuez: [1]}\n")
    refused = subprocess.run([sys.executable, "-m", "pulse.cli", "sweep", str(bad)], env=env,
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert refused.returncode == 2
    assert "grid search cannot enumerate a continuous range" in refused.stderr
    assert "parameters.bs needs value, values, min and max, or a distribution" in refused.stderr


def test_random_sweep_stops_at_run_cap_with_every_value_in_range(ingest, tmp_path):
    cwd = workdir(tmp_path)
    sweep_id = create(ingest.address, {"method": "random", "run_cap": 5, "metric": {"name": "loss"}, "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "layers": {"min": 1, "max": 4}, "act": {"values": ["relu", "gelu"]}}})
    a = agent(ingest.address, sweep_id, cwd)
    output = finish(a)
    assert a.returncode == 0, output
    assert "run_cap of 5 trials reached" in output
    rows = trials(ingest, sweep_id)
    assert len(rows) == 5 and {r["state"] for r in rows} == {"finished"}
    for row in rows:
        params = json.loads(row["params"])
        assert 1e-4 <= params["lr"] <= 1e-1 and params["layers"] in (1, 2, 3, 4) and params["act"] in ("relu", "gelu")
    assert sweep_state(ingest, sweep_id) == "finished"


def test_a_trial_reaching_the_metric_target_finishes_the_sweep(ingest, tmp_path):
    cwd = workdir(tmp_path)
    sweep_id = create(ingest.address, {"method": "random", "metric": {"name": "loss", "target": 0.5},
                                       "parameters": {"quality": {"values": [0]}, "steps": {"value": 4}}})
    a = agent(ingest.address, sweep_id, cwd)
    output = finish(a)
    assert a.returncode == 0 and "a trial reached the target loss 0.5" in output, output
    [row] = trials(ingest, sweep_id)
    assert row["objective"] == 0.25
    assert sweep_state(ingest, sweep_id) == "finished"


def test_bayes_with_two_concurrent_agents_never_issues_a_configuration_twice_while_both_run(ingest, tmp_path):
    cwd = workdir(tmp_path)
    sweep_id = create(ingest.address, {"method": "bayes", "run_cap": 12, "metric": {"name": "loss"}, "parameters": {
        "x": {"min": 0, "max": 5}, "opt": {"values": ["a", "b", "c"]}, "steps": {"value": 2},
        "sleep": {"value": 0.3}}})
    agents = [agent(ingest.address, sweep_id, cwd) for _ in range(2)]
    outputs = [finish(a) for a in agents]
    assert [a.returncode for a in agents] == [0, 0], outputs
    rows = trials(ingest, sweep_id)
    assert len(rows) == 12 and {r["state"] for r in rows} == {"finished"}
    pairs = list(overlapping(rows))
    assert pairs, "the two agents never ran at the same time"
    for a, b in pairs:
        assert a["params"] != b["params"], (a, b)
    assert len({r["params"] for r in rows}) == 12  # and nothing was tried twice at all
    assert all(r["objective"] is not None for r in rows)


def test_hyperband_kills_the_trials_below_the_quantile_and_no_others(ingest, tmp_path):
    cwd = workdir(tmp_path)
    # loss = quality + 1/(t+1): a lower quality is better at every step. eta 2, bands 2, 4, 8, judged on
    # the 2nd, 4th, 8th value (strict, W&B's default).
    sweep_id = create(ingest.address, {
        "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
        "parameters": {"quality": {"values": [0, 1, 2, 3]}, "steps": {"value": 9}, "ask_hyperband": {"value": 1}}})
    a = agent(ingest.address, sweep_id, cwd)
    output = finish(a)
    assert a.returncode == 0, output
    rows = {json.loads(r["params"])["quality"]: r for r in trials(ingest, sweep_id)}
    by_run = runs(ingest, sweep_id)
    # Trials run in grid order: 0 and 1 set the bar; 2 and 3 fall below the top half at a band.
    assert {q: rows[q]["state"] for q in rows} == {0: "finished", 1: "finished", 2: "killed", 3: "killed"}, output
    for quality in (2, 3):
        run = by_run[rows[quality]["run_id"]]
        assert run["state"] == "killed" and run["error"].startswith("hyperband: loss value at the band"), run
        assert rows[quality]["stop_reason"] == run["error"]
    for quality in (0, 1):
        assert by_run[rows[quality]["run_id"]]["state"] == "finished"
        assert rows[quality]["stop_reason"] == ""


def test_ingest_restart_mid_sweep_repeats_no_finished_trial(fresh_ingest, tmp_path):
    cwd = workdir(tmp_path)
    fresh_ingest.start()
    sweep_id = create(fresh_ingest.address, {"method": "grid", "metric": {"name": "loss"}, "parameters": {
        "a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y", "z"]}, "steps": {"value": 4},
        "sleep": {"value": 0.15}}})
    a = agent(fresh_ingest.address, sweep_id, cwd)
    wait_for(lambda: sum(r["state"] == "finished" for r in trials(fresh_ingest, sweep_id)) >= 3, timeout=300,
             step=0.3, what="three finished trials")
    fresh_ingest.kill()
    fresh_ingest.start()
    output = finish(a)
    assert a.returncode == 0, output
    rows = trials(fresh_ingest, sweep_id)
    assert sorted(r["grid_index"] for r in rows) == list(range(9)), output
    assert len({r["params"] for r in rows}) == 9
    assert {r["state"] for r in rows} == {"finished"}, rows
    assert {r["state"] for r in runs(fresh_ingest, sweep_id).values()} == {"finished"}
    assert sweep_state(fresh_ingest, sweep_id) == "finished"


def test_cancel_kills_the_running_trial_and_stop_lets_it_finish(ingest, tmp_path):
    cwd = workdir(tmp_path)
    env = dict(os.environ, PULSE_SERVER=ingest.address)
    long_trial = {"method": "random", "metric": {"name": "loss"},
                  "parameters": {"steps": {"value": 100_000}, "sleep": {"value": 0.05}}}
    canceled = create(ingest.address, long_trial)
    a = agent(ingest.address, canceled, cwd)
    wait_for(lambda: [r for r in runs(ingest, canceled).values() if r["state"] == "running"], timeout=120,
             what="the trial's run to start")
    subprocess.run([sys.executable, "-m", "pulse.cli", "sweep", "--cancel", canceled], env=env, check=True,
                   capture_output=True, timeout=120, cwd=ROOT)
    output = finish(a)
    assert a.returncode == 0, output
    [run] = runs(ingest, canceled).values()
    assert run["state"] == "killed" and run["error"] == f"sweep {canceled} was canceled", run
    assert sweep_state(ingest, canceled) == "canceled"

    stopped = create(ingest.address, {**long_trial, "parameters": {"steps": {"value": 40}, "sleep": {"value": 0.25}}})
    a = agent(ingest.address, stopped, cwd)
    wait_for(lambda: runs(ingest, stopped), timeout=120, what="the trial's run to start")
    SweepClient(ingest.address).stop(stopped)
    output = finish(a)
    assert a.returncode == 0 and f"sweep {stopped} is stopped" in output, output
    [run] = runs(ingest, stopped).values()
    assert run["state"] == "finished"


def test_a_stopped_agent_sigkills_a_trial_that_ignores_sigterm_and_marks_it_killed(ingest, tmp_path):
    cwd = workdir(tmp_path)
    sweep_id = create(ingest.address, {"method": "random", "parameters": {
        "steps": {"value": 100_000}, "sleep": {"value": 0.05}, "ignore_sigterm": {"value": 1}}})
    a = agent(ingest.address, sweep_id, cwd, "--kill-grace", "2")
    wait_for(lambda: [r for r in runs(ingest, sweep_id).values() if r["state"] == "running"], timeout=120,
             what="the trial's run to start")
    a.send_signal(signal.SIGTERM)
    output = finish(a)
    assert a.returncode == 130 and "SIGKILL" in output, output
    [run] = runs(ingest, sweep_id).values()
    assert run["state"] == "killed" and run["error"] == "its agent was interrupted", run
    [row] = trials(ingest, sweep_id)
    assert row["state"] == "killed"


def test_agent_gives_up_after_repeated_immediate_failures(ingest, tmp_path):
    cwd = workdir(tmp_path)
    sweep_id = create(ingest.address, {"method": "random", "parameters": {"fail": {"value": 1},
                                                                          "x": {"min": 0.0, "max": 1.0}}})
    a = agent(ingest.address, sweep_id, cwd)
    output = finish(a)
    assert a.returncode == 1 and "giving up" in output, output
    rows = trials(ingest, sweep_id)
    assert 3 <= len(rows) <= 5 and {r["state"] for r in rows} == {"failed"}
    for run in runs(ingest, sweep_id).values():  # the program never called emitter.init; the runs exist anyway
        assert run["state"] == "failed" and run["error"] == "the program exited with code 3"


def test_gpus_run_one_trial_per_gpu_with_cuda_visible_devices(ingest, tmp_path):
    cwd = workdir(tmp_path)
    sweep_id = create(ingest.address, {"method": "grid", "parameters": {
        "i": {"values": [1, 2, 3, 4, 5, 6]}, "steps": {"value": 3}, "sleep": {"value": 0.4}}})
    a = agent(ingest.address, sweep_id, cwd, "--gpus", "0,1")
    output = finish(a)
    assert a.returncode == 0, output
    rows = trials(ingest, sweep_id)
    by_run = runs(ingest, sweep_id)
    gpu = {r["run_id"]: json.loads(by_run[r["run_id"]]["config"])["gpu"] for r in rows}
    assert len(rows) == 6 and set(gpu.values()) == {"0", "1"}
    pairs = list(overlapping(rows))
    assert pairs, "the two GPUs never ran trials at the same time"
    for x, y in pairs:
        assert gpu[x["run_id"]] != gpu[y["run_id"]]
