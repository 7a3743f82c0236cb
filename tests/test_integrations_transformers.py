"""Hugging Face Trainer -> Pulse, through `report_to=["wandb"]` (compat/wandb) and through `PulseCallback`.

A tiny 2-layer BERT made from a config trains a few steps on synthetic data, with evaluation; what
the store holds is compared with what a recording callback saw the Trainer log.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments
from transformers.integrations.integration_utils import rewrite_logs

import emitter
from emitter.integrations.transformers import RUN_TOTALS, PulseCallback

MAX_STEPS, LOGGING_STEPS, EVAL_STEPS = 6, 2, 3


def project() -> str:
    return f"hf-{uuid.uuid4().hex[:8]}"


class Recorder(TrainerCallback):
    """What the Trainer hands every reporting callback: (global step, logs) in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict]] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.calls.append((state.global_step, dict(logs)))


class Synthetic(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 50, (n, 12), generator=g)
        self.labels = (self.ids[:, 0] > 25).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": self.labels[i]}


def tiny_trainer(tmp_path, report_to, callbacks, **overrides: object) -> Trainer:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=MAX_STEPS, per_device_train_batch_size=4,
                             per_device_eval_batch_size=8, logging_steps=LOGGING_STEPS, eval_strategy="steps",
                             eval_steps=EVAL_STEPS, report_to=report_to, use_cpu=True,
                             disable_tqdm=True, run_name="tiny-bert", dataloader_num_workers=0,
                             **{"save_strategy": "no", **overrides})
    return Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Synthetic(32, 1),
                   eval_dataset=Synthetic(16, 2), callbacks=callbacks)


def stored(ingest, run_id: str) -> dict[tuple[str, int], float]:
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE run_id = {r:String}", r=run_id)
    return {(r["key"], r["step"]): r["value"] for r in rows}


def assert_values_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def assert_config_and_summary(ingest, run, model, totals: dict, series: dict[str, float]) -> None:
    row = ingest.run_row(run.project, run.id)
    assert row["state"] == "finished" and row["name"] == "tiny-bert"
    config = json.loads(row["config"])
    assert config["model/num_parameters"] == model.num_parameters()
    assert config["hidden_size"] == 16 and config["num_hidden_layers"] == 2  # the model's config
    assert config["max_steps"] == MAX_STEPS and config["learning_rate"] == 5e-05  # the TrainingArguments
    summary = json.loads(row["summary"])
    for key, value in {**totals, **series}.items():
        assert summary[key] == pytest.approx(value, rel=1e-6), key


@pytest.fixture
def clean_run(emitter_env):
    yield emitter_env
    emitter.finish()


def test_trainer_report_to_wandb_through_the_compat_package(clean_run, tmp_path, monkeypatch):
    import wandb

    name = project()
    monkeypatch.setenv("WANDB_PROJECT", name)  # what a W&B user sets; the callback reads it
    recorder = Recorder()
    trainer = tiny_trainer(tmp_path, ["wandb"], [recorder])
    trainer.train()
    run = wandb.run
    assert run is not None and run.project == name
    wandb.finish()

    # W&B's callback: one log() call per Trainer log, auto-stepped, with train/global_step in each
    # row, and the run totals in the summary only.
    want, totals, last = {}, {}, {}
    for step, (global_step, logs) in enumerate(recorder.calls):
        totals.update({k: v for k, v in logs.items() if k in RUN_TOTALS})
        row = {**rewrite_logs({k: v for k, v in logs.items() if k not in RUN_TOTALS}),
               "train/global_step": global_step}
        want.update({(key, step): value for key, value in row.items()})
        last.update(row)
    assert {k for k, _ in want} >= {"train/loss", "train/learning_rate", "train/grad_norm", "eval/loss",
                                    "train/epoch", "train/global_step"}
    assert_values_equal(stored(clean_run, run.id), want)
    assert_config_and_summary(clean_run, run, trainer.model, totals, last)


def test_trainer_with_pulse_callback_stores_at_the_global_step(clean_run, tmp_path):
    name = project()
    recorder = Recorder()
    callback = PulseCallback(watch="gradients", log_freq=2, project=name)
    trainer = tiny_trainer(tmp_path, "none", [callback, recorder])
    trainer.train()
    run = emitter.run
    emitter.finish()

    want, totals, last = {}, {}, {}
    for global_step, logs in recorder.calls:
        totals.update({k: v for k, v in logs.items() if k in RUN_TOTALS})
        row = rewrite_logs({k: v for k, v in logs.items() if k not in RUN_TOTALS})
        want.update({(key, global_step): value for key, value in row.items()})
        last.update(row)
    steps = sorted({step for _, step in want})
    assert steps == sorted({LOGGING_STEPS, 2 * LOGGING_STEPS, EVAL_STEPS, MAX_STEPS})
    points = stored(clean_run, run.id)
    norms = {key for key, _ in points if key.startswith("grad_norm/")}  # watch(): with the histograms
    assert_values_equal({k: v for k, v in points.items() if k[0] not in norms}, want)
    assert_config_and_summary(clean_run, run, trainer.model, totals, last)
    grads = clean_run.query("SELECT DISTINCT key FROM histograms FINAL WHERE run_id = {r:String} "
                            "AND startsWith(key, 'gradients/')", r=run.id)
    weights = {f"{name}" for name, p in trainer.model.named_parameters() if p.requires_grad}
    assert {g["key"].removeprefix("gradients/") for g in grads} <= weights and len(grads) > 0
    assert {key.removeprefix("grad_norm/") for key in norms} == {g["key"].removeprefix("gradients/") for g in grads}


def test_report_to_pulse_selects_the_pulse_callback(clean_run, tmp_path):
    trainer = tiny_trainer(tmp_path, ["pulse"], [])
    assert any(isinstance(cb, PulseCallback) for cb in trainer.callback_handler.callbacks)


@pytest.mark.parametrize("log_model", ["checkpoint", "end"])
def test_log_model_stores_the_trainers_checkpoints_or_final_model_as_model_artifact_versions(clean_run, tmp_path,
                                                                                           log_model):
    """W&B's WANDB_LOG_MODEL: "checkpoint" makes each saved checkpoint a version of model-<run id>, "end" the
    final model; the stored files are the ones the Trainer wrote."""
    name = project()
    trainer = tiny_trainer(tmp_path, "none", [PulseCallback(project=name, log_model=log_model)],
                           save_strategy="steps", save_steps=EVAL_STEPS)
    trainer.train()
    run = emitter.run
    emitter.finish()
    artifact = f"model-{run.id}"
    versions = clean_run.query("SELECT version FROM artifact_versions FINAL WHERE project = {p:String} "
                               "AND name = {n:String} ORDER BY version", p=name, n=artifact)
    out = tmp_path / "out"
    saved = sorted(out.glob("checkpoint-*")) if log_model == "checkpoint" else [out / "pulse-final-model"]
    assert len(versions) == len(saved) > 0
    ref = f"checkpoint_global_step_{MAX_STEPS}" if log_model == "checkpoint" else "final"
    root = Path(emitter.Api().artifact(f"{name}/{artifact}:{ref}").download(str(tmp_path / "download")))
    source = out / f"checkpoint-{MAX_STEPS}" if log_model == "checkpoint" else out / "pulse-final-model"
    want = {f.relative_to(source): f.read_bytes() for f in source.rglob("*") if f.is_file()}
    assert {f.relative_to(root): f.read_bytes() for f in root.rglob("*") if f.is_file()} == want
