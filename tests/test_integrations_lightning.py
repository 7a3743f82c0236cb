"""Lightning -> Pulse, through `WandbLogger` (compat/wandb) and through `PulseLogger`.

A tiny module fits on synthetic data; a recording logger beside the one under test sees every
`log_metrics(metrics, step)` call, and the store must hold exactly those.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import urlparse

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import Logger, WandbLogger

import emitter
from emitter.integrations.lightning import PulseLogger


def project() -> str:
    return f"pl-{uuid.uuid4().hex[:8]}"


class Recorder(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int | None, dict]] = []

    @property
    def name(self) -> str:
        return "recorder"

    @property
    def version(self) -> str:
        return "0"

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.calls.append((step, {k: float(v) for k, v in metrics.items()}))


class Tiny(pl.LightningModule):
    def __init__(self, hidden: int = 8, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x):  # watch(log_graph=True) traces the module's own forward
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def data(seed: int) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 4, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)


def fit(logger, tmp_path, model: Tiny | None = None) -> tuple[Tiny, Recorder]:
    torch.manual_seed(0)
    model = model or Tiny()
    recorder = Recorder()
    trainer = pl.Trainer(max_epochs=2, logger=[logger, recorder], log_every_n_steps=1, accelerator="cpu",
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=str(tmp_path), limit_val_batches=2)
    trainer.fit(model, data(1), data(2))
    return model, recorder


def stored(ingest, run_id: str) -> dict[tuple[str, int], float]:
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE run_id = {r:String}", r=run_id)
    return {(r["key"], r["step"]): r["value"] for r in rows}


def assert_values_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


@pytest.fixture
def clean_run(emitter_env):
    yield emitter_env
    emitter.finish()


def test_wandb_logger_through_the_compat_package(clean_run, tmp_path):
    logger = WandbLogger(project=project(), save_dir=str(tmp_path), name="tiny")
    model = Tiny()
    logger.watch(model, log="all", log_freq=2)
    _, recorder = fit(logger, tmp_path, model)
    logger.log_image("inputs", [np.zeros((4, 6)), np.ones((4, 6))], caption=["zeros", "ones"])
    run = logger.experiment
    run.finish()

    # WandbLogger: one log() per call, auto-stepped, with Lightning's step as trainer/global_step.
    want = {}
    for i, (step, metrics) in enumerate(recorder.calls):
        want.update({(k, i): v for k, v in {**metrics, "trainer/global_step": step}.items()})
    # log_image's row has no step of its own: define_metric("*", step_sync=True) adds the last one, as in W&B
    want[("trainer/global_step", len(recorder.calls))] = recorder.calls[-1][0]
    points = stored(clean_run, run.id)
    watched = {k for k in points if k[0].startswith(("grad_norm/", "param_norm/"))}
    assert_values_equal({k: v for k, v in points.items() if k not in watched}, want)
    assert {k for k, _ in want} == {"train_loss", "val_loss", "epoch", "trainer/global_step"}
    row = clean_run.run_row(run.project, run.id)
    assert row["name"] == "tiny" and json.loads(row["config"]) == {"hidden": 8, "lr": 0.05}
    hists = clean_run.query("SELECT DISTINCT key FROM histograms FINAL WHERE run_id = {r:String}", r=run.id)
    assert {h["key"] for h in hists} == {f"{kind}/{name}" for kind in ("gradients", "parameters")
                                         for name, _ in model.named_parameters()}
    assert clean_run.scalar("SELECT count() FROM model_graphs FINAL WHERE run_id = {r:String}", r=run.id) == 1
    media = clean_run.query("SELECT key, caption FROM media FINAL WHERE run_id = {r:String} ORDER BY caption",
                            r=run.id)
    assert media == [{"key": "inputs", "caption": "ones"}, {"key": "inputs", "caption": "zeros"}]


def test_wandb_logger_log_table(clean_run, tmp_path):
    logger = WandbLogger(project=project(), save_dir=str(tmp_path))
    logger.log_table("samples", columns=["text", "label"], data=[["a", 1], ["b", 0]])
    run = logger.experiment
    emitter.finish()
    [row] = clean_run.query("SELECT kind, uri FROM media FINAL WHERE run_id = {r:String} AND key = 'samples'",
                            r=run.id)
    assert row["kind"] == "table"
    table = json.loads(Path(urlparse(row["uri"]).path).read_bytes())
    assert (table["columns"], table["data"]) == (["text", "label"], [["a", 1], ["b", 0]])


def test_pulse_logger_stores_at_lightnings_step(clean_run, tmp_path):
    logger = PulseLogger(project=project(), name="tiny", save_dir=str(tmp_path))
    model = Tiny()
    logger.watch(model, log="gradients", log_freq=2)
    _, recorder = fit(logger, tmp_path, model)
    logger.log_image("inputs", [np.zeros((4, 6))], step=recorder.calls[-1][0], caption=["zeros"])
    run = logger.experiment
    assert logger.version == run.id and logger.name == run.project
    emitter.finish()

    want = {}
    for step, metrics in recorder.calls:
        want.update({(k, step): v for k, v in metrics.items()})
    points = stored(clean_run, run.id)
    assert_values_equal({k: v for k, v in points.items() if not k[0].startswith("grad_norm/")}, want)
    assert json.loads(clean_run.run_row(run.project, run.id)["config"]) == {"hidden": 8, "lr": 0.05}
    hists = clean_run.query("SELECT DISTINCT key FROM histograms FINAL WHERE run_id = {r:String}", r=run.id)
    assert {h["key"] for h in hists} == {f"gradients/{name}" for name, _ in model.named_parameters()}
    assert clean_run.scalar("SELECT count() FROM media FINAL WHERE run_id = {r:String}", r=run.id) == 1


@pytest.mark.parametrize("make_logger", [
    lambda name, tmp: WandbLogger(project=name, save_dir=str(tmp)),
    lambda name, tmp: PulseLogger(project=name, save_dir=str(tmp)),
], ids=["WandbLogger", "PulseLogger"])
def test_k_fold_loop_with_experiment_finish_stores_one_run_per_fold(clean_run, tmp_path, make_logger):
    name, ids = project(), []
    for fold in range(3):
        logger = make_logger(name, tmp_path)
        logger.log_hyperparams({"fold": fold})
        fit(logger, tmp_path / str(fold))
        ids.append(logger.experiment.id)
        logger.experiment.finish()
    assert len(set(ids)) == 3
    for fold, run_id in enumerate(ids):
        row = clean_run.run_row(name, run_id)
        assert row["state"] == "finished" and json.loads(row["config"])["fold"] == fold
        count = clean_run.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String} "
                                 "AND key = 'train_loss'", r=run_id)
        assert count == 8  # 2 epochs of 4 batches, every one logged


@pytest.mark.parametrize("make_logger", [
    lambda name, tmp: WandbLogger(project=name, save_dir=str(tmp), log_model=True),
    lambda name, tmp: PulseLogger(project=name, save_dir=str(tmp), log_model=True),
], ids=["WandbLogger", "PulseLogger"])
def test_log_model_stores_the_kept_checkpoints_as_versions_of_the_runs_model_artifact(clean_run, tmp_path,
                                                                                     make_logger):
    """W&B's rule: with log_model=True the checkpoints ModelCheckpoint kept are logged when training ends,
    each a version of `model-<run id>`, the best aliased "best"; the stored bytes are the checkpoint's."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    name = project()
    logger = make_logger(name, tmp_path)
    torch.manual_seed(0)
    keep = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), monitor="val_loss", save_top_k=1)
    trainer = pl.Trainer(max_epochs=3, logger=logger, callbacks=[keep], log_every_n_steps=1, accelerator="cpu",
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                         limit_val_batches=2)
    trainer.fit(Tiny(), data(1), data(2))
    run = logger.experiment
    run.finish()
    artifact = f"model-{run.id}"
    versions = clean_run.query("SELECT version, created_by_run FROM artifact_versions FINAL "
                               "WHERE project = {p:String} AND name = {n:String}", p=name, n=artifact)
    assert versions and {v["created_by_run"] for v in versions} == {run.id}
    best = emitter.Api().artifact(f"{name}/{artifact}:best")
    root = Path(best.download(str(tmp_path / "download")))
    assert (root / "model.ckpt").read_bytes() == Path(keep.best_model_path).read_bytes()
