"""W&B semantics, through the `wandb` compatibility package (compat/wandb) and through `emitter` itself.

The emitter keeps them (compat only gives them W&B's names), so each holds both ways.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import uuid

import numpy as np
import pytest

import emitter
from conftest import run_script
from emitter.config import Config, ConfigError, select_keys
from emitter.summary import MetricDefinition, SummaryTracker


def project() -> str:
    return f"wsem-{uuid.uuid4().hex[:8]}"


def points(ingest, run_id: str) -> list[tuple[str, int, float]]:
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE run_id = {r:String} "
                        "ORDER BY step, key", r=run_id)
    return [(r["key"], r["step"], r["value"]) for r in rows]


def summary_of(ingest, project_name: str, run_id: str) -> dict:
    return json.loads(ingest.run_row(project_name, run_id)["summary"])


@pytest.fixture
def wandb(emitter_env):
    import wandb

    yield wandb
    wandb.finish()
    emitter.finish()


# -- the import surface the frameworks use --------------------------------------------------


def test_frameworks_find_and_accept_the_compat_package():
    import wandb
    import wandb.sdk
    import wandb.wandb_run
    from lightning_utilities.core.imports import RequirementCache
    from transformers.integrations import is_wandb_available
    from wandb.sdk.lib import RunDisabled
    from wandb.sdk.lib.config_util import ConfigError as WandbConfigError
    from wandb.sdk.wandb_run import Run

    assert importlib.metadata.version("wandb") == wandb.__version__ == "0.31.0+pulse"
    assert bool(RequirementCache("wandb>=0.12.10"))  # Lightning's check, on package metadata
    assert is_wandb_available()  # transformers': find_spec plus hasattr(wandb, "run")
    assert wandb.wandb_run.Run is Run and isinstance(RunDisabled, type)
    assert WandbConfigError is ConfigError
    assert issubclass(wandb.errors.UsageError, wandb.errors.Error)
    for name in ("termlog", "termwarn", "termerror", "login", "require", "Settings", "env", "util", "define_metric",
                 "watch", "Image", "Histogram", "Table", "Artifact", "log_artifact"):
        assert hasattr(wandb, name), name
    assert wandb.run is None and wandb.login() is True


@pytest.mark.parametrize("name, issue, call", [
    ("Table", 14, lambda f: f(columns=["a"], data=[[1]])),
    ("Artifact", 14, lambda f: f("model", type="model")),
    ("log_artifact", 14, lambda f: f(None)),
    ("agent", 16, lambda f: f("sweep-id", function=print)),
])
def test_features_pulse_lacks_raise_naming_their_issue_and_forward_once_it_has_them(name, issue, call):
    import wandb

    if hasattr(emitter, name):  # the issue has landed: wandb forwards to the emitter's own
        assert getattr(wandb, name) is getattr(emitter, name)
        return
    with pytest.raises(NotImplementedError, match=rf"wandb\.{name} is not in Pulse yet \(Pulse issue {issue}"):
        call(getattr(wandb, name))


def test_import_emitter_stays_light():
    done = run_script("""
        import sys
        import emitter, emitter.integrations, emitter.tensorboard, emitter.config
        heavy = {"torch", "numpy", "transformers", "lightning", "keras", "tensorboard", "tensorboardX", "wandb",
                 "chdb", "clickhouse_connect", "streamlit"}
        print("LOADED", sorted(heavy & {name.split(".")[0] for name in sys.modules}))
    """)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout


# -- run lifetime ---------------------------------------------------------------------------


def test_second_init_returns_the_live_run_unless_reinit(wandb):
    first = wandb.init(project=project())
    assert wandb.init(project=project()) is first
    second = wandb.init(project=first.project, reinit=True)
    assert second is not first and second.id != first.id and wandb.run is second


def test_log_after_finish_raises_and_wandb_run_is_none(wandb):
    run = wandb.init(project=project())
    run.log({"a": 1})
    run.finish()
    assert wandb.run is None and emitter.run is None
    with pytest.raises(wandb.errors.UsageError, match=f"Run \\({run.id}\\) is finished"):
        run.log({"a": 2})
    with pytest.raises(wandb.errors.Error, match="wandb.init"):
        wandb.log({"a": 3})


def test_each_fold_after_run_finish_stores_its_own_run(wandb, emitter_env):
    name, ids = project(), []
    for fold in range(3):
        run = wandb.init(project=name, config={"fold": fold})
        run.log({"loss": 1.0 / (fold + 1)})
        ids.append(run.id)
        run.finish()
    assert len(set(ids)) == 3
    for fold, run_id in enumerate(ids):
        assert points(emitter_env, run_id) == [("loss", 0, 1.0 / (fold + 1))]


def test_resume_allow_without_an_id_starts_a_new_run(wandb, emitter_env):
    run = wandb.init(project=project(), id=None, resume="allow")  # what Lightning's WandbLogger passes
    run.log({"x": 1})
    run.finish()
    assert emitter_env.run_row(run.project, run.id)["state"] == "finished"


# -- what log() takes ------------------------------------------------------------------------


def test_nested_dicts_flatten_to_dotted_keys_and_arrays_become_histograms(wandb, emitter_env):
    import torch

    run = wandb.init(project=project())
    wandb.log({"train": {"loss": 0.5, "acc": {"top1": 0.75}}, "weights": np.arange(100.0),
               "grads": [0.1, 0.2, 0.3], "acts": torch.ones(5), "one": np.array([2.5])})
    run.finish()
    assert points(emitter_env, run.id) == [("one", 0, 2.5), ("train.acc.top1", 0, 0.75), ("train.loss", 0, 0.5)]
    hists = emitter_env.query("SELECT key, count FROM histograms FINAL WHERE run_id = {r:String} ORDER BY key",
                              r=run.id)
    assert [(h["key"], h["count"]) for h in hists] == [("acts", 5), ("grads", 3), ("weights", 100)]


# -- config ----------------------------------------------------------------------------------


def test_config_change_raises_config_error_unless_allowed_same_value_and_new_keys_fine():
    config = Config()
    config.update({"lr": 0.1, "layers": [1, 2]})
    config.update({"lr": 0.1, "layers": [1, 2], "seed": 3})  # same values, a new key
    with pytest.raises(ConfigError, match=r"config\['lr'\] is already 0.1.*allow_val_change=True"):
        config.update({"lr": 0.2, "batch": 8})
    assert "batch" not in config  # refused whole
    with pytest.raises(ConfigError):
        config["lr"] = 0.3
    with pytest.raises(ConfigError):
        config.lr = 0.3
    config.update({"lr": 0.2}, allow_val_change=True)
    assert config.lr == 0.2
    config.lock({"lr": 0.5})  # a sweep's value
    config.update({"lr": 0.1})  # the script's own default: kept out, no error
    assert config.lr == 0.5
    config.allow_changes()  # init(allow_val_change=True)
    config.seed = 4
    assert config.seed == 4


def test_config_error_through_wandb_and_init_allow_val_change(wandb):
    from wandb.sdk.lib.config_util import ConfigError as WandbConfigError

    wandb.init(project=project(), config={"lr": 0.1})
    with pytest.raises(WandbConfigError):
        wandb.config.update({"lr": 0.2})
    wandb.config.update({"lr": 0.2}, allow_val_change=True)
    run = wandb.init(project=project(), config={"lr": 0.1}, allow_val_change=True, reinit=True)
    run.config.lr = 0.3
    assert wandb.config.lr == 0.3


def test_config_include_and_exclude_keys(wandb, emitter_env):
    params = {"lr": 0.1, "data_dir": "/tmp/data", "seed": 1}
    assert select_keys(params, exclude=["data_dir"]) == {"lr": 0.1, "seed": 1}
    assert select_keys(params, include=["lr"]) == {"lr": 0.1}
    with pytest.raises(ValueError, match="exclusive"):
        select_keys(params, include=["lr"], exclude=["seed"])
    with pytest.raises(TypeError, match="list of keys"):
        select_keys(params, exclude="data_dir")
    run = wandb.init(project=project(), config=params, config_exclude_keys=["data_dir"])
    run.finish()
    assert json.loads(emitter_env.run_row(run.project, run.id)["config"]) == {"lr": 0.1, "seed": 1}


def test_unimplemented_init_argument_warns_once_naming_it(wandb, caplog):
    pulse_log = logging.getLogger("pulse")
    pulse_log.addHandler(caplog.handler)
    try:
        wandb.init(project=project(), monitor_gym=True, anonymous=None)
        wandb.init(project=project(), monitor_gym=True, reinit=True)
    finally:
        pulse_log.removeHandler(caplog.handler)
    warnings = [r.getMessage() for r in caplog.records if "monitor_gym" in r.getMessage()]
    assert warnings == ["pulse: init(monitor_gym=...) is not implemented by Pulse; ignored"]
    assert not any("anonymous" in r.getMessage() for r in caplog.records)  # None is W&B's default


# -- the emitter itself (import emitter as wandb) ------------------------------------------------


def test_emitter_second_init_returns_the_live_run(emitter_env):
    first = emitter.init(project=project())
    try:
        assert emitter.init(project=first.project) is first
        assert emitter.init(project=first.project, reinit="return_previous") is first
        with pytest.raises(emitter.UsageError, match="reinit must be"):
            emitter.init(project=first.project, reinit="sometimes")
        with pytest.raises(emitter.UsageError, match="resume='must' while a run is live"):
            emitter.init(project=first.project, id=first.id, resume="must")
        assert emitter.run is first and first.is_live()
    finally:
        emitter.finish()


def test_emitter_log_after_finish_raises(emitter_env):
    run = emitter.init(project=project())
    run.finish()
    with pytest.raises(Exception, match="finished"):
        run.log({"a": 1})
    emitter.finish()


def test_emitter_run_is_none_after_run_finish(emitter_env):
    run = emitter.init(project=project())
    run.finish()
    try:
        assert emitter.run is None
    finally:
        emitter.finish()


def test_emitter_resume_allow_without_id_starts_a_new_run(emitter_env):
    run = emitter.init(project=project(), id=None, resume="allow")
    emitter.finish()
    assert emitter_env.run_row(run.project, run.id)["state"] == "finished"


def test_emitter_summary_is_readable_right_after_log(emitter_env):
    emitter.init(project=project())
    try:
        emitter.log({"loss": 0.5})
        assert emitter.summary["loss"] == 0.5
    finally:
        emitter.finish()


def test_emitter_log_flattens_nested_dicts(emitter_env):
    run = emitter.init(project=project())
    emitter.log({"train": {"loss": 0.5}})
    emitter.finish()
    assert points(emitter_env, run.id) == [("train.loss", 0, 0.5)]


def test_emitter_log_makes_histograms_of_arrays_and_lists(emitter_env):
    run = emitter.init(project=project())
    emitter.log({"weights": np.arange(10.0), "grads": [1.0, 2.0]})
    emitter.finish()
    hists = emitter_env.query("SELECT key FROM histograms FINAL WHERE run_id = {r:String} ORDER BY key", r=run.id)
    assert [h["key"] for h in hists] == ["grads", "weights"]


def test_emitter_name_tags_notes_set_after_init_are_stored(emitter_env):
    run = emitter.init(project=project(), name="before")
    run.name, run.tags, run.notes = "after", ["a", "b"], "changed"
    emitter.finish()
    row = emitter_env.run_row(run.project, run.id)
    assert (row["name"], list(row["tags"]), row["notes"]) == ("after", ["a", "b"], "changed")


def test_run_metadata_set_after_init_is_refused_at_the_call_and_by_the_ingest_as_at_init(emitter_env):
    from ingest.validate import event_problem
    from pulse.v1 import telemetry_pb2 as pb

    run = emitter.init(project=project(), name="kept")
    try:
        with pytest.raises(ValueError, match=r"run\.name = \.\.\.: name contains control characters"):
            run.name = "two\nlines"
        with pytest.raises(TypeError, match="list of strings"):
            run.tags = "a,b"
        assert run.name == "kept" and run.tags == []
    finally:
        emitter.finish()
    with pytest.raises(emitter.UsageError, match="is finished"):
        run.notes = "too late"
    assert "control characters" in event_problem(pb.Event(update=pb.RunUpdate(name="two\nlines")))
    assert event_problem(pb.Event(update=pb.RunUpdate(set_tags=True, tags=[""]))) == "tags[0] is empty"
    assert event_problem(pb.Event(update=pb.RunUpdate(notes="fine", set_tags=True))) is None


def test_metric_definitions_exact_beats_glob_last_glob_wins_and_a_name_defined_again_adds_up():
    tracker = SummaryTracker()
    tracker.define(MetricDefinition("train/*", summary="max"))
    tracker.define(MetricDefinition("loss", summary="min"))
    tracker.define(MetricDefinition("*", step_metric="step", step_sync=True))
    assert tracker.definition("loss").summary == "min"  # an exact name beats any glob, defined before or after
    assert tracker.definition("train/acc").name == "*"  # the later glob: train/*'s summary="max" is gone
    again = tracker.define(MetricDefinition("loss", summary="max", goal="minimize"))
    assert (again.modes, again.goal) == (["min", "max"], "minimize")  # W&B merges a redefinition...
    again = tracker.define(MetricDefinition("loss", summary="last"), overwrite=True)
    assert (again.modes, again.goal) == (["last"], "")  # ...unless overwrite=True
    assert tracker.synced_steps() == {"step"}


def test_emitter_later_glob_definition_keeps_earlier_summary_setting(emitter_env):
    run = emitter.init(project=project())
    emitter.define_metric("eval/loss", summary="min")
    emitter.define_metric("train/global_step")
    emitter.define_metric("*", step_metric="train/global_step", step_sync=True)  # what transformers adds
    for step, loss in enumerate([0.5, 0.2, 0.4]):
        emitter.log({"eval/loss": loss, "train/global_step": step})
    emitter.finish()
    assert summary_of(emitter_env, run.project, run.id)["eval/loss"] == {"min": 0.2}


def test_emitter_step_sync_adds_the_step_metric_to_rows_without_it(emitter_env):
    run = emitter.init(project=project())
    emitter.define_metric("trainer/global_step")
    emitter.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    emitter.log({"trainer/global_step": 7, "loss": 0.5})
    emitter.log({"val/acc": 0.9})
    emitter.finish()
    assert ("trainer/global_step", 1, 7.0) in points(emitter_env, run.id)


def test_emitter_step_sync_is_on_with_a_step_metric_unless_turned_off_as_in_w_and_b(emitter_env):
    run = emitter.init(project=project())
    emitter.define_metric("val/*", step_metric="epoch")  # W&B: step_sync defaults to True here
    emitter.define_metric("test/*", step_metric="epoch", step_sync=False)
    emitter.log({"val/acc": 0.5})  # before any epoch: W&B adds 0
    emitter.log({"epoch": 3})
    emitter.log({"val/acc": 0.7, "test/acc": 0.6})
    emitter.log({"test/acc": 0.8})
    emitter.finish()
    assert points(emitter_env, run.id) == [("epoch", 0, 0.0), ("val/acc", 0, 0.5), ("epoch", 1, 3.0),
                                           ("epoch", 2, 3.0), ("test/acc", 2, 0.6), ("val/acc", 2, 0.7),
                                           ("test/acc", 3, 0.8)]


def test_emitter_summary_keeps_ints_as_ints(emitter_env):
    run = emitter.init(project=project())
    emitter.log({"epoch": 3, "loss": 0.5})
    emitter.finish()
    summary = summary_of(emitter_env, run.project, run.id)
    assert summary["epoch"] == 3 and type(summary["epoch"]) is int and type(summary["loss"]) is float


def test_emitter_init_sync_tensorboard_patches_the_writers(emitter_env):
    import emitter.tensorboard

    emitter.init(project=project(), sync_tensorboard=True)
    try:
        assert emitter.tensorboard.is_patched()
    finally:
        emitter.tensorboard.unpatch()
        emitter.finish()


def test_emitter_init_warns_about_an_argument_it_ignores(emitter_env, caplog):
    pulse_log = logging.getLogger("pulse")
    pulse_log.addHandler(caplog.handler)
    try:
        emitter.init(project=project(), fork_from="other-run?_step=10")
    finally:
        pulse_log.removeHandler(caplog.handler)
        emitter.finish()
    assert [r.getMessage() for r in caplog.records if "fork_from" in r.getMessage()] == [
        "pulse: init(fork_from=...) is not implemented by Pulse; ignored"]
