"""Seeded data for the dashboard suites (no tests here): runs written through the real wire.

Two kinds of runs:

- hand-made batches (`seed`): edge cases an emitter cannot be made to produce on demand — scalars
  with spikes and NaN/Inf, system samples for two GPUs, NaN-poisoned gradient histograms and health
  alerts, images, 18 sweep trials, hostile names — sent as `pulse.v1.Batch` messages over a real
  gRPC stream to a real ingest;
- runs the real emitter writes (`train_workspace`, `train_failing`, run as trainer subprocesses
  against that ingest): what a user's W&B-style script stores — `watch(model, log_graph=True)` on
  a real torch model (norms, histograms, the model graph), `define_metric`, a group of runs, a
  20,000-key run, an in-process sweep, a run that raises — with its console output and metadata.
  Nothing the emitter writes as a structure (graph, metadata, console lines) is ever hand-made here.

dashboard_stack.py serves both with `pulse up`.
"""

from __future__ import annotations

import io
import json
import math
import random
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc

from pulse.v1 import telemetry_pb2 as pb

HOUR_US = 3_600_000_000
STEPS = 3000
SPIKE_STEP, SPIKE = 1234, 1e6
HOSTILE_PROJECT_PREFIX = "x'; DROP TABLE runs; --\\"
HOSTILE_RUN = "o'brien \"\\ run <b>*bold*</b>"
HOSTILE_KEY = "we'ird\\key\"; DROP TABLE metrics; --"
HOSTILE_TAG = "t'ag\\\"; --"
HOSTILE_CONFIG_KEY = "c'fg\\\"key"
PARAMS = ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")



@dataclass
class Seeded:
    """What was written, for tests to look up."""

    project: str
    hostile_project: str
    runs: dict[str, str] = field(default_factory=dict)  # name -> run_id
    sweep_id: str = ""
    sweep_trials: int = 0
    media_stored: bool = False
    workspace: str = ""  # the project the real emitter wrote
    ws_runs: dict[str, str] = field(default_factory=dict)  # name -> run_id, of the emitter-written runs
    ws_sweep_id: str = ""


# -- the wire ----------------------------------------------------------------------------------------


def stream(address: str, batches: list[pb.Batch]) -> list[pb.Ack]:
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=pb.Batch.SerializeToString,
                                     response_deserializer=pb.Ack.FromString)
        return list(call(iter(batches), timeout=120))


class RunBatches:
    """The batches of one run, in seq order; `send` streams them and checks nothing was rejected."""

    def __init__(self, project: str, name: str, created_us: int, run_id: str | None = None, **start) -> None:
        self.project, self.run_id = project, run_id or uuid.uuid4().hex[:12]
        self.created_us = created_us
        self.batches: list[pb.Batch] = []
        config = start.pop("config", {})
        self.event(start=pb.RunStart(name=name, created_at_us=created_us, config_json=json.dumps(config),
                                     host="seed-host", **start))

    def batch(self) -> pb.Batch:
        b = pb.Batch(project=self.project, run_id=self.run_id, stream_id=f"{self.run_id}.seed",
                     seq=len(self.batches) + 1)
        self.batches.append(b)
        return b

    def event(self, **kind) -> None:
        self.batch().events.append(pb.Event(**kind))

    def scalars(self, series: dict[str, list[tuple[int, float]]], seconds_per_step: float = 0.5) -> None:
        b = self.batch()
        for i, (key, points) in enumerate(series.items()):
            b.scalars.keys.append(key)
            for step, value in points:
                b.scalars.key_index.append(i)
                b.scalars.step.append(step)
                b.scalars.ts_us.append(self.created_us + int(step * seconds_per_step * 1e6))
                b.scalars.value.append(value)

    def finish(self, state: str = "finished", exit_code: int = 0, error: str = "", summary: dict | None = None) -> None:
        if summary is not None:
            self.event(summary=pb.SummaryUpdate(summary_json=json.dumps(summary)))
        self.event(finish=pb.RunFinish(state=state, exit_code=exit_code, error=error))

    def send(self, address: str, allow_rejected: tuple[str, ...] = ()) -> list[pb.Ack]:
        acks = stream(address, self.batches)
        rejected = [r for ack in acks for r in ack.rejected if not r.what.startswith(allow_rejected)]
        assert not rejected, rejected
        return acks


# -- what is seeded -----------------------------------------------------------------------------------


def seed(address: str, tag: str = "", emitter_runs: bool = True) -> Seeded:
    """Everything above, through `address`; with `emitter_runs`, the trainers write the workspace too."""
    tag = tag or uuid.uuid4().hex[:8]
    seeded = Seeded(project=f"dash-{tag}", hostile_project=f"{HOSTILE_PROJECT_PREFIX}{tag}")
    now = time.time_ns() // 1000
    runs = [
        _training(seeded.project, "alpha", now - 3 * HOUR_US, lr=0.1, spike=True,
                  tags=["baseline", HOSTILE_TAG], extra_config={HOSTILE_CONFIG_KEY: "v'al"}),
        _training(seeded.project, "beta", now - 2 * HOUR_US, lr=0.01, nonfinite=True, state="failed",
                  tags=["nan-hunt"]),
        _model_run(seeded.project, now - HOUR_US),
        _hostile(seeded.hostile_project, now - HOUR_US),
    ]
    sweep = _sweep(seeded.project, now - 5 * HOUR_US)
    seeded.sweep_id, seeded.sweep_trials = sweep[0].batches[0].events[0].start.sweep_id, len(sweep)
    crashed = RunBatches(seeded.project, "gamma-crashed", now - HOUR_US // 2, config={"lr": 1.0})
    crashed.scalars({"Train/loss": [(s, 2.0 / (s + 1)) for s in range(100)]})
    everything = [*runs, *sweep, crashed]
    seeded.workspace = f"ws-{tag}"
    # Each stream waits for its batches' commits (one flush each): send the runs side by side, while
    # the trainer subprocesses write the workspace project.
    with ThreadPoolExecutor(len(everything) + 1) as pool:
        trainers = pool.submit(emitted, address, seeded.workspace, tempfile.mkdtemp(prefix="pulse-trainers-")) \
            if emitter_runs else None
        list(pool.map(lambda run: run.send(address, allow_rejected=("media",)), everything))
        if trainers is not None:
            seeded.ws_runs, seeded.ws_sweep_id = trainers.result()
    for run in everything:
        seeded.runs[run.batches[0].events[0].start.name] = run.run_id
    return seeded


def _training(project: str, name: str, created_us: int, lr: float, spike: bool = False, nonfinite: bool = False,
              state: str = "finished", tags: list[str] | None = None, extra_config: dict | None = None) -> RunBatches:
    config = {"lr": lr, "optimizer": "adam", "batch_size": 64, "layers": [64, 32], **(extra_config or {})}
    run = RunBatches(project, name, created_us, config=config, tags=tags or [], group="mlp")
    steps = STEPS if state == "finished" else 2000
    rng = random.Random(name)
    train_loss = [(s, 2.0 * math.exp(-s / (400 / lr ** 0.3)) + 0.05 + 0.02 * rng.random()) for s in range(steps)]
    if spike:
        train_loss[SPIKE_STEP] = (SPIKE_STEP, SPIKE)
    if nonfinite:
        for s, value in ((700, math.nan), (701, math.nan), (1500, math.inf)):
            train_loss[s] = (s, value)
    series = {
        "Train/loss": train_loss,
        "Train/acc": [(s, min(0.99, 0.3 + 0.7 * (1 - math.exp(-s / 600)) + 0.01 * rng.random())) for s in range(steps)],
        "Test/loss": [(s, 2.2 * math.exp(-s / 500) + 0.1) for s in range(0, steps, 100)],
        "Test/acc": [(s, 0.25 + 0.6 * (1 - math.exp(-s / 700))) for s in range(0, steps, 100)],
        "lr": [(s, lr * 0.5 * (1 + math.cos(math.pi * s / steps))) for s in range(0, steps, 10)],
    }
    run.scalars(series)
    summary = {k: v[-1][1] for k, v in series.items()}
    if state == "failed":
        run.finish("failed", 1, "RuntimeError: loss is NaN", summary=summary)
    else:
        run.finish(summary=summary)
    return run


def _model_run(project: str, created_us: int) -> RunBatches:
    """A watched model: norms, histograms (one NaN-poisoned), health alerts, graph, system, media."""
    run = RunBatches(project, "model-run", created_us, config={"lr": 0.05, "model": "Net"})
    rng = random.Random(7)
    steps = range(0, 500, 10)
    norms = {}
    for i, param in enumerate(PARAMS):
        scale = 10 ** -i
        norms[f"grad_norm/{param}"] = [(s, scale * (1 + 0.3 * rng.random()) * (40 if (param == "fc1.weight"
                                                                                       and s == 300) else 1))
                                       for s in steps]
    norms["Train/loss"] = [(s, 1 / (1 + s / 50)) for s in range(500)]
    run.scalars(norms)
    b = run.batch()
    for s in steps:
        for param in PARAMS:
            for kind, spread in (("gradients", 0.01 * (1 + s / 100)), ("parameters", 0.5)):
                edges = [-spread * 3 + 6 * spread * k / 16 for k in range(17)]
                counts = [int(1000 * math.exp(-((k - 7.5) / 3) ** 2)) for k in range(16)]
                nonfinite = 5 if (kind == "gradients" and param == "fc2.weight" and s >= 400) else 0
                b.histograms.append(pb.Histogram(key=f"{kind}/{param}", step=s, ts_us=created_us + s * 500_000,
                                                 count=sum(counts) + nonfinite, sum=0.0, min=edges[0], max=edges[-1],
                                                 nonfinite=nonfinite, bucket_edges=edges, bucket_counts=counts))
    run.event(alert=pb.Alert(ts_us=created_us + 300 * 500_000, level="WARN", title="Gradient exploding: fc1.weight",
                             text="gradient norm 41.2 at step 300 is 35.1x its running median 1.17 (threshold 20x)"))
    run.event(alert=pb.Alert(ts_us=created_us + 400 * 500_000, level="ERROR", title="Gradient nonfinite: fc2.weight",
                             text="5 NaN/Inf values in the gradient at step 400"))
    run.event(alert=pb.Alert(ts_us=created_us + 450 * 500_000, level="INFO", title="Accuracy target reached",
                             text="Test/acc passed 0.9"))
    _system(run, created_us)
    _media(run, created_us)
    run.finish(summary={"Train/loss": 0.09, "gradient_health": {
        "nonfinite": {"fc2.weight": 400}, "exploding": {"fc1.weight": 300}, "vanishing": {}}})
    return run


def _system(run: RunBatches, created_us: int, samples: int = 300) -> None:
    b = run.batch()
    block = b.system
    block.host = "seed-host"
    keys = ["cpu.percent", "mem.percent", "proc.rss_mb", "disk.read_mb_s", "net.sent_mb_s",
            "gpu.util", "gpu.mem_used_mb", "gpu.power_w", "gpu.temp_c"]
    block.keys.extend(keys)
    block.devices.extend(["", "gpu0", "gpu1"])
    for i in range(samples):
        ts = created_us + i * 2_000_000
        wave = 0.5 + 0.5 * math.sin(i / 15)
        values = {"cpu.percent": 40 + 30 * wave, "mem.percent": 55 + 0.02 * i, "proc.rss_mb": 900 + i,
                  "disk.read_mb_s": 5 * wave, "net.sent_mb_s": 1 + wave}
        for k, key in enumerate(keys):
            devices = [1, 2] if key.startswith("gpu.") else [0]
            for d in devices:
                gpu_value = {"gpu.util": 80 + 15 * wave - 10 * d, "gpu.mem_used_mb": 20_000 + 3_000 * d + 10 * i,
                             "gpu.power_w": 250 + 60 * wave - 20 * d, "gpu.temp_c": 60 + 10 * wave + 3 * d}
                block.key_index.append(k)
                block.device_index.append(d)
                block.ts_us.append(ts)
                block.value.append(gpu_value[key] if key.startswith("gpu.") else values[key])


def png(width: int, height: int, seed_value: int) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (20 + seed_value * 40 % 200, 60, 120))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(240, 200, 40 + seed_value * 30))
    draw.rectangle((0, 0, width // 3, height // 6), fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _media(run: RunBatches, created_us: int) -> None:
    b = run.batch()
    for step in (0, 100, 200):
        for index in range(3):
            b.media.append(pb.Media(key="samples", step=step, index=index, kind="image", mime="image/png", width=64,
                                    height=64, caption=f"sample {index} @ {step} (it's <ok>)",
                                    data=png(64, 64, index + step // 100)))
    b.media.append(pb.Media(key="confusion", step=200, kind="image", mime="image/png", width=96, height=96,
                            caption="confusion matrix", data=png(96, 96, 5)))


def _hostile(project: str, created_us: int) -> RunBatches:
    run = RunBatches(project, HOSTILE_RUN, created_us, config={HOSTILE_CONFIG_KEY: "x'y", "lr": 0.5},
                     tags=[HOSTILE_TAG])
    run.scalars({HOSTILE_KEY: [(s, float(s)) for s in range(10)]})
    run.finish(summary={HOSTILE_KEY: 9.0, "nan_metric": math.nan})
    return run


def sweep_objective(lr: float, batch_size: int, dropout: float) -> float:
    """Large learning rates give higher losses (the issue's own example); batch size barely matters."""
    return 0.2 + 0.8 * (math.log10(lr) + 4) / 4 + 0.05 * dropout + 0.002 * (batch_size / 32)


def _sweep(project: str, created_us: int, trials: int = 18) -> list[RunBatches]:
    sweep_id = f"sw{uuid.uuid4().hex[:6]}"
    rng = random.Random(3)
    runs = []
    for i in range(trials):
        params = {"lr": 10 ** rng.uniform(-4, 0), "batch_size": rng.choice([32, 64, 128]),
                  "dropout": round(rng.uniform(0, 0.5), 3)}
        run = RunBatches(project, f"trial-{i + 1:02d}", created_us + i * 600_000_000, sweep_id=sweep_id,
                         config={**params, "epochs": 5})
        loss = sweep_objective(**params)
        run.scalars({"val_loss": [(s, loss * (1 + 1 / (s + 1))) for s in range(5)]})
        if i in (4, 11):
            run.finish("killed", 143, "stopped early by hyperband", summary={"val_loss": loss * 1.5})
        elif i == 7:
            run.finish("failed", 1, "CUDA out of memory", summary={})
        else:
            run.finish(summary={"val_loss": loss, "val_acc": 1 - loss / 2})
        runs.append(run)
    return runs


# -- runs the real emitter writes --------------------------------------------------------------------------

WIDE_KEYS = 20_000
GROUP = "lr-scan"
GROUP_LRS = (0.1, 0.03, 0.01)
GROUP_SPIKE_STEP = 37  # one step of one run of the group: the band and the line must both keep it
FAIL_MESSAGE = "loss diverged at step 7"
WORKSPACE_SWEEP_TRIALS = 4


def emitted(address: str, project: str, data_dir: str) -> tuple[dict[str, str], str]:
    """Run both trainers (side by side) against `address`; (name -> run id, the sweep's id)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = {**os.environ, "PULSE_SERVER": address, "PULSE_PROJECT": project, "PULSE_DIR": data_dir,
           "PULSE_FINISH_TIMEOUT": "60", "PULSE_SYSTEM_INTERVAL": "0.5", "PYTHONPATH": str(here.parent)}
    env.pop("PULSE_MODE", None)
    env.pop("PULSE_API_KEY", None)
    procs = {name: subprocess.Popen([sys.executable, "-c", f"import test_dashboard_seed as s; s.{name}()"],
                                    cwd=here, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in ("train_workspace", "train_failing")}
    ids: dict[str, str] = {}
    sweep_id = ""
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        expected = 1 if name == "train_failing" else 0  # the failing trainer dies of its exception
        assert proc.returncode == expected, f"{name} exited {proc.returncode}:\n{out[-3000:]}\n{err[-3000:]}"
        report = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
        ids.update(report["runs"])
        sweep_id = report.get("sweep_id") or sweep_id
    return ids, sweep_id


def _report(runs: dict[str, str], **extra) -> None:
    print(json.dumps({"runs": runs, **extra}), flush=True)


def train_workspace() -> None:
    """A user's W&B-style script: a watched torch model, a group of runs, a 20,000-key run, a sweep."""
    import torch
    from torch import nn

    import emitter

    runs: dict[str, str] = {}
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run = emitter.init(name="watched-mlp", group="baselines", job_type="train", tags=["torch", "watched"],
                       notes="A small MLP, watched.", config={"lr": 0.1, "batch_size": 32, "optimizer": "sgd",
                                                             "model": {"hidden": 16, "dropout": 0.1}})
    emitter.define_metric("epoch")
    emitter.define_metric("val/*", step_metric="epoch")
    emitter.define_metric("val/loss", step_metric="epoch", summary="min", goal="minimize")
    emitter.watch(model, log="all", log_freq=10, log_graph=True)
    for step in range(60):
        x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        row = {"train/loss": loss.item(), "train/acc": float((model(x).argmax(1) == y).float().mean())}
        if step % 20 == 19:
            row |= {"epoch": step // 20, "val/loss": 1.2 - 0.1 * (step // 20), "val/acc": 0.4 + 0.1 * (step // 20),
                    "predictions": emitter.Histogram(model(x).detach().flatten().numpy())}
            print(f"epoch {step // 20}: val/loss {row['val/loss']:.3f}", flush=True)
        emitter.log(row)
    emitter.log({"test/accuracy": 0.71})  # one point: drawn as a point, not an empty line
    runs[run.name] = run.id
    emitter.finish()

    for i, lr in enumerate(GROUP_LRS):
        run = emitter.init(name=f"scan-lr{lr}", group=GROUP, job_type="train", config={"lr": lr, "seed": i})
        for step in range(60):
            loss = 2.0 * math.exp(-step * lr) + 0.01 * i
            if i == 0 and step == GROUP_SPIKE_STEP:
                loss = 50.0
            emitter.log({"train/loss": loss, "val/loss": loss + 0.1})
        runs[run.name] = run.id
        emitter.finish()

    run = emitter.init(name="wide-run", job_type="probe", config={"probes": WIDE_KEYS})
    for step in range(2):
        emitter.log({f"probe/{k:05d}": float(k + step) for k in range(WIDE_KEYS)} | {"train/loss": 1.0 / (step + 1)})
    runs[run.name] = run.id
    emitter.finish()

    sweep_id = emitter.sweep({"name": "ws-grid", "method": "grid", "metric": {"name": "val_loss", "goal": "minimize"},
                              "parameters": {"lr": {"values": [0.3, 0.1, 0.03, 0.01]}}})

    def trial() -> None:
        trial_run = emitter.init()
        for step in range(5):
            emitter.log({"val_loss": trial_run.config.lr * 10 / (step + 1)})

    emitter.agent(sweep_id, function=trial, count=WORKSPACE_SWEEP_TRIALS)
    _report(runs, sweep_id=sweep_id)


def train_failing() -> None:
    """A trainer whose loss diverges: it raises, uncaught, so the process dies and the run fails."""
    import sys

    import emitter

    run = emitter.init(name="failing-run", job_type="train", tags=["unstable"], config={"lr": 10.0})
    _report({run.name: run.id})
    for step in range(10):
        emitter.log({"train/loss": 2.0 ** step})
        print(f"step {step}: loss {2.0 ** step:.1f}", flush=True)
        if step == 7:
            print("warning: the loss is exploding", file=sys.stderr, flush=True)
            raise RuntimeError(FAIL_MESSAGE)
