"""Seeded data for the dashboard suites (no tests here): runs written through the real wire.

Every record a dashboard page reads — scalars with spikes and NaN/Inf, system samples for two
GPUs, gradient histograms, norms, health alerts, a model graph, images, sweep trials — is sent as
`pulse.v1.Batch` messages over a real gRPC stream to a real ingest, as an emitter would, so the
pages are tested on what the ingest actually stores; dashboard_stack.py serves it with `pulse up`.
"""

from __future__ import annotations

import io
import json
import math
import random
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
GRAPH = {
    "name": "Net", "prefix": "", "dataflow": "torch.fx", "param_count": 1_234,
    "modules": [
        {"name": "", "type": "Net", "parent": None, "leaf": False, "params": {}, "param_count": 0},
        {"name": "fc1", "type": "Linear", "parent": "", "leaf": True, "params": {"weight": [32, 16], "bias": [32]},
         "param_count": 544},
        {"name": "block", "type": "Sequential", "parent": "", "leaf": False, "params": {}, "param_count": 0},
        {"name": "block.act", "type": "ReLU", "parent": "block", "leaf": True, "params": {}, "param_count": 0},
        {"name": "block.drop", "type": "Dropout", "parent": "block", "leaf": True, "params": {}, "param_count": 0},
        {"name": "fc2", "type": "Linear", "parent": "", "leaf": True, "params": {"weight": [10, 32], "bias": [10]},
         "param_count": 330},
    ],
    "edges": [["input", "fc1"], ["fc1", "block.act"], ["block.act", "block.drop"], ["block.drop", "fc2"],
              ["fc2", "output"]],
}


@dataclass
class Seeded:
    """What was written, for tests to look up."""

    project: str
    hostile_project: str
    runs: dict[str, str] = field(default_factory=dict)  # name -> run_id
    sweep_id: str = ""
    sweep_trials: int = 0
    media_stored: bool = False


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


def seed(address: str, tag: str = "") -> Seeded:
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
    # Each stream waits for its batches' commits (one flush each): send the runs side by side.
    with ThreadPoolExecutor(len(everything)) as pool:
        list(pool.map(lambda run: run.send(address, allow_rejected=("media",)), everything))
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
    run.event(graph=pb.ModelGraph(graph_json=json.dumps(GRAPH)))
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
