"""emitter.Api reads back what the real emitter logged through the real ingest: config, summary,
state, every history point (scan_history), a downsampled history that keeps each bucket's min and
max, W&B's filters and orders (bound parameters, allowlisted), key scopes, and 1,000 runs paged."""

from __future__ import annotations

import math
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_ingest_validation import batch, stream

import emitter
from conftest import ROOT, Ingest
from pulse.v1 import telemetry_pb2 as pb


def project() -> str:
    return f"api-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def logged(ingest, tmp_path_factory):
    """One run with 3,000 steps of `loss` (a spike, a NaN) and `acc` every 10 steps, logged by the emitter."""
    mp = pytest.MonkeyPatch()
    mp.setenv("PULSE_SERVER", ingest.address)
    mp.setenv("PULSE_DIR", str(tmp_path_factory.mktemp("pulse")))
    rng = np.random.default_rng(0)
    loss = np.abs(rng.normal(1.0, 0.1, 3000))
    loss[1234], loss[2100], loss[77] = 50.0, -3.0, math.nan
    name = project()
    run = emitter.init(project=name, name="baseline", tags=["a", "b"], notes="n",
                       config={"lr": 0.01, "opt": {"name": "adam"}, "layers": [1, 2]})
    for step in range(3000):
        values = {"loss": float(loss[step])}
        if step % 10 == 0:
            values["acc"] = step / 3000
        emitter.log(values, step=step)
    run.summary["best"] = 0.99
    emitter.finish()
    mp.undo()
    return ingest, name, run.id, loss


def test_run_has_its_config_summary_state_and_names(logged):
    ingest, name, run_id, loss = logged
    run = emitter.Api(server=ingest.address).run(f"{name}/{run_id}")
    assert (run.id, run.name, run.project, run.state, run.tags, run.notes) == (
        run_id, "baseline", name, "finished", ["a", "b"], "n")
    assert run.config == {"lr": 0.01, "opt": {"name": "adam"}, "layers": [1, 2]}
    assert run.summary["best"] == 0.99 and run.summary["acc"] == 2990 / 3000
    assert run.created_at.startswith("20") and run.path == [name, run_id]
    assert emitter.Api(server=ingest.address).run(f"someone/{name}/runs/{run_id}").id == run_id  # W&B's paths
    with pytest.raises(ValueError, match="no run"):
        emitter.Api(server=ingest.address).run(f"{name}/nope")


def test_scan_history_returns_every_point_page_by_page(logged):
    ingest, name, run_id, loss = logged
    run = emitter.Api(server=ingest.address).run(f"{name}/{run_id}")
    rows = list(run.scan_history(page_size=128))
    assert [r["_step"] for r in rows] == list(range(3000))
    got = np.array([r["loss"] for r in rows])
    assert np.array_equal(got, loss, equal_nan=True)
    assert [r["acc"] for r in rows if "acc" in r] == [s / 3000 for s in range(0, 3000, 10)]
    assert all(r["_timestamp"] > 1.6e9 for r in rows)
    acc = list(run.scan_history(keys=["acc"], page_size=7))  # W&B: only steps holding every key asked for
    assert [r["_step"] for r in acc] == list(range(0, 3000, 10)) and set(acc[0]) == {"_step", "_timestamp", "acc"}
    window = list(run.scan_history(keys=["loss"], min_step=100, max_step=199, page_size=30))
    assert [r["_step"] for r in window] == list(range(100, 200))


def test_history_is_downsampled_in_clickhouse_and_keeps_min_and_max(logged):
    ingest, name, run_id, loss = logged
    run = emitter.Api(server=ingest.address).run(f"{name}/{run_id}")
    frame = run.history(keys=["loss"], samples=100)
    assert list(frame.columns) == ["_step", "loss"] and 50 <= len(frame) <= 100
    assert frame["loss"].max() == 50.0 and frame["loss"].min() == -3.0  # the spikes survive
    assert set(frame.loc[frame["loss"] == 50.0, "_step"]) == {1234}
    for step, value in zip(frame["_step"], frame["loss"]):
        assert loss[step] == value  # every value shown was logged at that step
    short = run.history(keys=["acc"], samples=500)  # 300 points: all of them
    assert list(short["_step"]) == list(range(0, 3000, 10))
    both = run.history(samples=1000, pandas=False)  # every key: acc whole, loss cut into 500 buckets
    assert [r["_step"] for r in both if "acc" in r] == list(range(0, 3000, 10))
    assert 500 <= sum("loss" in r for r in both) <= 1000 and max(r.get("loss", 0) for r in both) == 50.0


def runs_for_filters(ingest, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("PULSE_SERVER", ingest.address)
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
    name = project()
    specs = [("r0", 0.1, "adam", 0.50, ["x"], 0), ("r1", 0.01, "sgd", 0.70, ["x", "y"], 0),
             ("r2", 0.001, "adam", 0.90, [], 1), ("r3", 0.01, "adam", float("nan"), ["y"], 0)]
    for run_name, lr, opt, acc, tags, code in specs:
        emitter.init(project=name, id=run_name, name=f"name-{run_name}", tags=tags,
                     config={"lr": lr, "opt": {"name": opt}, "flat.key": run_name})
        emitter.log({"acc": acc})
        emitter.finish(exit_code=code)
    return name


def test_runs_filters_and_orders_as_wandb_does(ingest, tmp_path, monkeypatch):
    name = runs_for_filters(ingest, tmp_path, monkeypatch)
    api = emitter.Api(server=ingest.address)

    def ids(filters=None, order="+created_at"):
        return [r.id for r in api.runs(name, filters, order=order)]

    assert ids() == ["r0", "r1", "r2", "r3"] and ids(order="-created_at") == ["r3", "r2", "r1", "r0"]
    assert ids({"config.lr": 0.01}) == ["r1", "r3"]
    assert ids({"config.lr": {"$lt": 0.05, "$gt": 0.001}}) == ["r1", "r3"]
    assert ids({"config.lr.value": 0.1}) == ["r0"]  # W&B's spelling of a config value
    assert ids({"config.opt.name": "adam"}) == ["r0", "r2", "r3"]  # a nested key
    assert ids({"config.flat.key": "r2"}) == ["r2"]  # a key with a dot in it
    assert ids({"state": "failed"}) == ["r2"]
    assert ids({"$and": [{"state": "finished"}, {"config.opt.name": "adam"}]}) == ["r0", "r3"]
    assert ids({"$or": [{"tags": "y"}, {"summary_metrics.acc": {"$gte": 0.9}}]}) == ["r1", "r2", "r3"]
    assert ids({"tags": {"$in": ["x"]}}) == ["r0", "r1"] and ids({"tags": {"$nin": ["x", "y"]}}) == ["r2"]
    assert ids({"config.lr": {"$in": [0.1, 0.001]}}) == ["r0", "r2"]
    assert ids({"config.lr": {"$nin": [0.1, 0.001]}}) == ["r1", "r3"]
    assert ids({"display_name": {"$regex": "^name-r[12]$"}}) == ["r1", "r2"]
    assert ids({"summary_metrics.acc": {"$exists": True}, "config.missing": {"$exists": False}}) == [
        "r0", "r1", "r2", "r3"]
    assert ids({"created_at": {"$gt": "2000-01-01T00:00:00"}}) == ["r0", "r1", "r2", "r3"]
    assert ids(order="-summary_metrics.acc") == ["r2", "r1", "r0", "r3"]  # NaN is no value: last
    assert ids(order="+config.lr")[:2] == ["r2", "r1"] and ids(order="name") == ["r0", "r1", "r2", "r3"]
    # A value, even one written as SQL, is only ever a value; a field name inside config too.
    assert ids({"config.lr": "0.01' OR 1=1 --"}) == [] and ids({"config.x') OR 1=1 --": 1}) == []
    with pytest.raises(ValueError, match="unknown filter operator '\\$where'"):
        ids({"config.lr": {"$where": "1"}})
    with pytest.raises(ValueError, match="cannot filter on 'password'"):
        ids({"password": "x"})
    with pytest.raises(ValueError, match="cannot order by 'exit_code; DROP'"):
        ids(order="exit_code; DROP")


def test_a_key_for_one_project_cannot_read_another_through_the_api(tmp_path):
    server = Ingest(tmp_path / "data", "--auth").start()
    try:
        admin = (server.data_dir / "admin-key").read_text().strip()

        def key(project_name: str) -> str:
            done = subprocess.run([sys.executable, "-m", "pulse.cli", "keys", "create", "--project", project_name],
                                  env={"PULSE_SERVER": server.address, "PULSE_API_KEY": admin,
                                       "PATH": "/usr/bin:/bin"}, cwd=ROOT, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr
            return done.stdout.strip().split()[-1]

        ours, theirs = project(), project()
        for name, key_ in ((ours, key(ours)), (theirs, key(theirs))):
            code = (f"import emitter; emitter.init(project={name!r}, id='r1'); emitter.log({{'loss': 1.0}}); "
                    "emitter.finish()")
            done = subprocess.run([sys.executable, "-c", code], env={
                "PULSE_SERVER": server.address, "PULSE_API_KEY": key_, "PULSE_DIR": str(tmp_path / name),
                "PATH": "/usr/bin:/bin"}, cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        reader = emitter.Api(server=server.address, api_key=key(ours))
        assert [r.id for r in reader.runs(ours)] == ["r1"]
        assert [r["loss"] for r in reader.run(f"{ours}/r1").scan_history()] == [1.0]
        assert len(reader.runs(theirs)) == 0
        with pytest.raises(ValueError, match="no run"):
            reader.run(f"{theirs}/r1")
        assert len(emitter.Api(server=server.address, api_key=admin).runs(theirs)) == 1
    finally:
        server.stop()


def test_runs_pages_through_a_thousand_runs(ingest):
    name = project()

    def start(i: int) -> None:
        b = batch(name, f"run{i:04d}", events=[pb.Event(start=pb.RunStart(
            name=f"n{i}", config_json=f'{{"i": {i}, "even": {str(i % 2 == 0).lower()}}}',
            created_at_us=1_700_000_000_000_000 + i))], start=False)
        [ack] = stream(ingest.address, [b.SerializeToString()])
        assert not ack.rejected

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(start, range(1000)))
    api = emitter.Api(server=ingest.address)
    runs = api.runs(name, order="+created_at", per_page=64)
    assert len(runs) == 1000
    assert [r.id for r in runs] == [f"run{i:04d}" for i in range(1000)]  # 16 pages, none overlapping
    assert runs[999].config == {"i": 999, "even": False} and runs[-1].id == "run0999"
    even = api.runs(name, {"config.even": True, "config.i": {"$gte": 900}}, order="-config.i", per_page=7)
    assert [r.config["i"] for r in even] == list(range(998, 899, -2))


def test_files_and_artifacts_of_a_run_come_back_through_the_api(emitter_env, tmp_path, monkeypatch):
    if not hasattr(emitter, "log_artifact") or not hasattr(emitter, "save"):
        pytest.skip("this emitter has no artifacts yet (issue 14 item 1)")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"w" * 1000)
    (tmp_path / "notes.txt").write_text("saved with the run")
    name = project()
    producer = emitter.init(project=name)
    model = emitter.Artifact("model", "model", metadata={"acc": 0.9})
    model.add_file(str(tmp_path / "weights.bin"))
    emitter.log_artifact(model, aliases=["best"])
    emitter.save(str(tmp_path / "notes.txt"), base_path=str(tmp_path), policy="now")
    emitter.finish()
    consumer = emitter.init(project=name)
    emitter.use_artifact("model:best")
    emitter.finish()

    api = emitter.Api(server=emitter_env.address)
    made = api.run(f"{name}/{producer.id}")
    [logged_] = made.logged_artifacts()
    assert (logged_.name, logged_.version, logged_.metadata) == ("model:v0", "v0", {"acc": 0.9})
    assert made.used_artifacts() == []
    [used] = api.run(f"{name}/{consumer.id}").used_artifacts()
    assert used.digest == logged_.digest
    [saved] = made.files()
    assert (saved.name, saved.size) == ("notes.txt", len("saved with the run"))
    assert open(saved.download(str(tmp_path / "down"))).read() == "saved with the run"
    fetched = api.artifact(f"{name}/model:best")
    assert open(fetched.get_entry("weights.bin").download(str(tmp_path / "w"))).read() == "w" * 1000
