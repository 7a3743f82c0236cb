"""W&B semantics of the emitter: steps, value types, config forms, exit handling, fork."""

from __future__ import annotations

import argparse
import uuid

import numpy as np
import pytest
import torch

import emitter
from conftest import run_script


def project() -> str:
    return f"sem-{uuid.uuid4().hex[:8]}"


def points(ingest, run_id: str) -> list[tuple[str, int, float]]:
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE run_id = {r:String} "
                        "ORDER BY step, key", r=run_id)
    return [(r["key"], r["step"], r["value"]) for r in rows]


def test_steps_auto_increment_merge_on_repeat_and_never_go_back(emitter_env, caplog):
    run = emitter.init(project=project())
    emitter.log({"a": 1})                     # step 0, then 1
    emitter.log({"a": 2})                     # step 1, then 2
    emitter.log({"b": 3}, commit=False)       # step 2, stays 2
    emitter.log({"c": 4})                     # merges into step 2, then 3
    emitter.log({"d": 5}, step=10)            # explicit step: 10, not committed
    emitter.log({"e": 6}, step=10)            # repeats: merges into 10
    emitter.log({"f": 7}, step=4)             # backwards: dropped with a warning
    emitter.log({"g": 8}, step=3)             # still backwards: dropped, counted
    emitter.log({"h": 9})                     # no step: merges into 10, then 11
    assert run.step == 11
    emitter.finish()
    assert points(emitter_env, run.id) == [("a", 0, 1.0), ("a", 1, 2.0), ("b", 2, 3.0), ("c", 2, 4.0),
                                           ("d", 10, 5.0), ("e", 10, 6.0), ("h", 10, 9.0)]
    assert run.stats()["backwards_dropped"] == 2
    warnings = [r.message for r in caplog.records if "backwards" in r.message]
    assert len(warnings) == 1  # warned once


def test_numbers_bools_numpy_scalars_and_zero_dim_tensors_are_logged_arrays_histograms_others_rejected_by_key(
        emitter_env, caplog):
    run = emitter.init(project=project())
    emitter.log({
        "int": 3, "float": 0.5, "bool": True,
        "np_f32": np.float32(1.5), "np_i64": np.int64(7), "np_bool": np.bool_(True),
        "np_0d": np.array(2.5), "tensor": torch.tensor(4.25), "nan": float("nan"), "inf": float("inf"),
        "text": "hello", "vector": [1, 2], "tensor_1d": torch.ones(3), "array": np.ones(2),
        "complex": 1j,
    })
    emitter.finish()
    stored = {key: value for key, _, value in points(emitter_env, run.id)}
    assert {k: stored[k] for k in ("int", "float", "bool", "np_f32", "np_i64", "np_bool", "np_0d",
                                   "tensor", "inf")} == {
        "int": 3.0, "float": 0.5, "bool": 1.0, "np_f32": 1.5, "np_i64": 7.0, "np_bool": 1.0,
        "np_0d": 2.5, "tensor": 4.25, "inf": float("inf")}
    assert np.isnan(stored["nan"])
    rejected = run.stats()["rejected_keys"]
    assert set(rejected) == {"text", "complex"}
    assert "str" in rejected["text"] and "complex" in rejected["complex"]
    hists = emitter_env.query("SELECT key, count FROM histograms FINAL WHERE run_id = {r:String} ORDER BY key",
                              r=run.id)
    assert [(h["key"], h["count"]) for h in hists] == [("array", 2), ("tensor_1d", 3), ("vector", 2)]  # as W&B
    assert any("text" in r.message and "str" in r.message for r in caplog.records)


def test_tensor_changed_in_place_after_log_keeps_the_logged_value(emitter_env):
    run = emitter.init(project=project())
    total = torch.tensor(1.0)
    emitter.log({"total": total})
    total += 100  # the training loop reuses its accumulator
    emitter.finish()
    assert points(emitter_env, run.id) == [("total", 0, 1.0)]


def test_config_from_dict_namespace_and_yaml_with_item_and_attribute_access(emitter_env, tmp_path):
    yaml_path = tmp_path / "config.yaml"
    yaml_path.write_text("optimizer: adam\nepochs:\n  value: 3\n  desc: passes over the data\n")
    namespace = argparse.Namespace(lr=0.01, batch_size=32)
    run = emitter.init(project=project(), config=namespace)
    assert emitter.config["lr"] == 0.01 and emitter.config.batch_size == 32
    emitter.config.update(str(yaml_path))
    emitter.config.dropout = 0.1
    emitter.config["seed"] = 7
    run.config.update({"lr": 0.02}, allow_val_change=True)  # W&B refuses a change without it
    assert dict(emitter.config.items()) == {"lr": 0.02, "batch_size": 32, "optimizer": "adam", "epochs": 3,
                                            "dropout": 0.1, "seed": 7}
    with pytest.raises(AttributeError):
        _ = emitter.config.missing
    emitter.log({"x": 1})
    emitter.finish()
    import json

    stored = json.loads(emitter_env.run_row(run.project, run.id)["config"])
    assert stored == {"lr": 0.02, "batch_size": 32, "optimizer": "adam", "epochs": 3, "dropout": 0.1,
                      "seed": 7}


def test_summary_keeps_last_values_defined_metrics_and_explicit_entries(emitter_env):
    import json

    run = emitter.init(project=project())
    emitter.define_metric("val/loss", summary="min", goal="minimize")
    emitter.define_metric("train/*", summary="max,last")
    for step, loss in enumerate([0.9, 0.4, 0.6]):
        emitter.log({"val/loss": loss, "train/acc": step / 10, "lr": 0.1 - step * 0.01})
    emitter.summary["best_epoch"] = 1
    emitter.finish()
    row = emitter_env.run_row(run.project, run.id)
    summary = json.loads(row["summary"])
    assert summary["val/loss"] == {"min": 0.4}
    assert summary["train/acc"] == {"max": 0.2, "last": 0.2}
    assert summary["lr"] == pytest.approx(0.08)
    assert summary["best_epoch"] == 1
    assert json.loads(row["metric_defs"])["val/loss"]["goal"] == "minimize"


WANDB_SCRIPT = '''
import argparse
import emitter as wandb

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

wandb.init(project=PROJECT, config=args, entity="someone", save_code=True)
for epoch in range(wandb.config["epochs"]):
    for batch in range(10):
        step = epoch * 10 + batch
        wandb.log({"train/loss": 1.0 / (step + 1), "lr": wandb.config.lr}, step=step)
    wandb.log({"val/acc": 0.5 + epoch / 10}, step=step)
wandb.run.summary["final"] = "done"
print("RUN", wandb.run.id, wandb.run.name, wandb.run.url)
wandb.finish()
'''


def test_plain_wandb_script_runs_unchanged(emitter_env):
    name = project()
    done = run_script(f"PROJECT = {name!r}\n" + WANDB_SCRIPT, {}, args=["--lr", "0.05", "--epochs", "2"])
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split("RUN ")[1].split()[0]
    assert f"project={name}&run={run_id}" in done.stdout
    row = emitter_env.run_row(name, run_id)
    assert row["state"] == "finished" and '"lr": 0.05' in row["config"] and '"final": "done"' in row["summary"]
    assert emitter_env.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String}", r=run_id) == 42


@pytest.mark.parametrize("ending, state, error", [
    ("pass", "finished", ""),
    ("raise ValueError('loss went to NaN')", "failed", "ValueError: loss went to NaN"),
    ("import sys; sys.exit(3)", "failed", "exit code 3"),
])
def test_script_without_finish_ends_its_run_at_exit(emitter_env, ending, state, error):
    name = project()
    done = run_script(f"""
        import emitter
        run = emitter.init(project={name!r})
        print("RUN", run.id, flush=True)
        for step in range(100):
            emitter.log({{"loss": step}})
        {ending}
    """, {})
    run_id = done.stdout.split("RUN ")[1].split()[0]
    row = emitter_env.run_row(name, run_id)
    assert row["state"] == state, done.stderr
    assert row["error"] == error
    assert emitter_env.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String}", r=run_id) == 100


def test_fork_mid_run_neither_deadlocks_nor_duplicates(emitter_env):
    name = project()
    done = run_script(f"""
        import multiprocessing as mp, os, emitter

        def worker(i):
            emitter.log({{"from_child": i}})  # a DataLoader worker touching the run: ignored
            return i * i

        run = emitter.init(project={name!r})
        for step in range(5000):
            emitter.log({{"loss": step}})
            if step == 2500:
                with mp.get_context("fork").Pool(2) as pool:
                    assert pool.map(worker, range(8)) == [i * i for i in range(8)]
                pid = os.fork()
                if pid == 0:
                    emitter.log({{"child": 1}})
                    emitter.finish()
                    os._exit(0)
                os.waitpid(pid, 0)
        emitter.finish()
        print("RUN", run.id)
    """, {}, timeout=120)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split("RUN ")[1].split()[0]
    rows = emitter_env.query("SELECT key, count() AS n, uniqExact(step) AS steps FROM metrics "
                             "WHERE run_id = {r:String} GROUP BY key", r=run_id)
    assert rows == [{"key": "loss", "n": 5000, "steps": 5000}]  # no duplicates, no child data
    assert emitter_env.run_row(name, run_id)["state"] == "finished"


def test_log_rejects_a_non_mapping_with_a_clear_error(emitter_env):
    emitter.init(project=project())
    with pytest.raises(TypeError, match="dict of metrics"):
        emitter.log([1, 2, 3])
    emitter.finish()


def test_log_before_init_says_what_to_do():
    emitter.finish()
    with pytest.raises(RuntimeError, match="emitter.init"):
        emitter.log({"x": 1})


def test_resume_continues_after_the_last_stored_step_and_keeps_the_run(emitter_env):
    name = project()
    first = emitter.init(project=name, name="long-job", config={"lr": 0.1}, tags=["a"])
    for step in range(10):
        emitter.log({"loss": 1.0 / (step + 1)})
    emitter.finish()

    again = emitter.init(project=name, id=first.id, resume="allow")
    assert again.step == 10  # where the stored steps left off
    emitter.log({"loss": 0.01})
    emitter.finish()
    assert [s for _, s, _ in points(emitter_env, first.id)] == list(range(11))
    row = emitter_env.run_row(name, first.id)
    assert row["state"] == "finished" and row["name"] == "long-job" and list(row["tags"]) == ["a"]

    with pytest.raises(ValueError, match="does not exist"):
        emitter.init(project=name, id="no-such-run", resume="must")
    with pytest.raises(ValueError, match="already exists"):
        emitter.init(project=name, id=first.id, resume="never")
    fresh = emitter.init(project=name, id="brand-new-run", resume=True)  # allow: a new run is fine
    assert fresh.step == 0
    emitter.finish()
