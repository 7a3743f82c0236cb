"""TensorBoard sync: scalars, histograms and images a SummaryWriter writes are stored at the writer's global step."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

import emitter
import emitter.tensorboard
from conftest import run_script


def project() -> str:
    return f"tb-{uuid.uuid4().hex[:8]}"


def points(ingest, run_id: str) -> list[tuple[str, int, float]]:
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE run_id = {r:String} "
                        "ORDER BY step, key", r=run_id)
    return [(r["key"], r["step"], round(r["value"], 6)) for r in rows]


@pytest.fixture
def patched(emitter_env):
    emitter.tensorboard.patch()
    yield emitter_env
    emitter.tensorboard.unpatch()
    emitter.finish()


def test_torch_summary_writer_scalars_histograms_and_images_are_stored_at_global_step(patched, tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = emitter.init(project=project())
    writer = SummaryWriter(str(tmp_path / "runs" / "exp"))
    expected = []
    for step in range(0, 50, 5):
        loss = round(1.0 / (step + 1), 6)
        writer.add_scalar("train/loss", loss, global_step=step)
        writer.add_scalar("train/lr", 0.5, global_step=step, new_style=True)  # a tensor, not simple_value
        expected += [("train/loss", step, loss), ("train/lr", step, 0.5)]
    writer.add_scalars("val", {"acc": 0.75, "f1": 0.5}, global_step=60)  # one sub-writer per scalar
    writer.add_histogram("weights", np.arange(100.0), global_step=60)
    writer.add_image("sample", np.ones((3, 8, 6)), global_step=60)
    writer.close()
    emitter.finish()
    expected += [("val_acc/val", 60, 0.75), ("val_f1/val", 60, 0.5)]
    assert points(patched, run.id) == sorted(expected, key=lambda p: (p[1], p[0]))
    hist = patched.query("SELECT key, step, count, min, max FROM histograms FINAL WHERE run_id = {r:String}",
                         r=run.id)
    assert hist == [{"key": "weights", "step": 60, "count": 100, "min": 0.0, "max": 99.0}]
    media = patched.query("SELECT key, step, kind, width, height FROM media FINAL WHERE run_id = {r:String}",
                          r=run.id)
    assert media == [{"key": "sample", "step": 60, "kind": "image", "width": 6, "height": 8}]


def test_tensorboardx_writer_is_synced_too(patched, tmp_path):
    from tensorboardX import SummaryWriter

    run = emitter.init(project=project())
    writer = SummaryWriter(str(tmp_path / "tbx"))
    for step in (1, 2, 3):
        writer.add_scalar("loss", step / 10, global_step=step)
    writer.close()
    emitter.finish()
    assert points(patched, run.id) == [("loss", 1, 0.1), ("loss", 2, 0.2), ("loss", 3, 0.3)]


def test_train_and_validation_writers_are_named_by_their_directory(patched, tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    run = emitter.init(project=project())
    train, val = SummaryWriter(str(tmp_path / "logs" / "train")), SummaryWriter(str(tmp_path / "logs" / "validation"))
    train.add_scalar("loss", 0.5, global_step=10)
    val.add_scalar("loss", 0.25, global_step=10)
    train.close()
    val.close()
    emitter.finish()
    assert points(patched, run.id) == [("train/loss", 10, 0.5), ("validation/loss", 10, 0.25)]


def test_unpatch_stops_the_sync_and_files_are_written_either_way(emitter_env, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    emitter.tensorboard.patch()
    emitter.tensorboard.patch()  # again: harmless
    emitter.tensorboard.unpatch()
    assert not emitter.tensorboard.is_patched()
    run = emitter.init(project=project())
    writer = SummaryWriter(str(tmp_path / "off"))
    writer.add_scalar("loss", 1.0, global_step=1)
    writer.close()
    emitter.finish()
    assert points(emitter_env, run.id) == []
    events = EventAccumulator(str(tmp_path / "off"))
    events.Reload()
    assert [e.value for e in events.Scalars("loss")] == [1.0]


def test_wandb_script_with_sync_tensorboard_logs_only_through_summary_writer(emitter_env, tmp_path):
    name = project()
    done = run_script(f"""
        import wandb
        from torch.utils.tensorboard import SummaryWriter

        run = wandb.init(project={name!r}, sync_tensorboard=True)
        writer = SummaryWriter({str(tmp_path / "runs")!r})
        for step in range(0, 30, 3):
            writer.add_scalar("loss", 1.0 / (step + 1), global_step=step)
            writer.add_scalar("acc", step / 30, global_step=step)
        writer.close()
        print("RUN", run.id)
        wandb.finish()
    """)
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split("RUN ")[1].split()[0]
    expected = sorted([("loss", s, round(1.0 / (s + 1), 6)) for s in range(0, 30, 3)]
                      + [("acc", s, round(s / 30, 6)) for s in range(0, 30, 3)], key=lambda p: (p[1], p[0]))
    assert points(emitter_env, run_id) == expected
    assert emitter_env.run_row(name, run_id)["state"] == "finished"
