"""`pulse demo`: the whole stack plus a few live training runs, so a newcomer sees charts move.

Each demo run is a separate process (`python -m pulse.demo --train ...`) that trains a small
two-layer MLP on a synthetic spiral with numpy alone (no downloads, no torch), logging with the
emitter like any user script would; one more, `--live` (pulse/demo_live.py), logs until the demo
stops, with images, histograms, an alert and, with torch, watch(log_graph=True):

    python -m pulse.demo --train --seed 0 --server 127.0.0.1:50051 --project demo
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time

from pulse.demo_live import LIVE_NAME, live

LEARNING_RATES = (0.3, 0.1, 0.03, 1.0)
STOP_GRACE_S = 20.0
# A small W&B-format sweep over the same trainer, run by two agents beside the demo runs.
DEMO_SWEEP = {
    "name": "demo-lr-grid",
    "method": "grid",
    "metric": {"name": "val/loss", "goal": "minimize"},
    "parameters": {"lr": {"values": [0.03, 0.1, 0.3, 1.0]}, "seed": {"values": [0, 1]},
                   "steps": {"value": 600}},
    "command": ["${env}", "${interpreter}", "-m", "pulse.demo", "--train", "${args}"],
}


def run_demo(config, ui_port: int | None, runs: int = 3, sweep_agents: int = 2) -> int:
    """Serve the stack with `runs` demo trainers until SIGINT/SIGTERM; the trainers stop first."""
    from pulse.stack import run_stack

    def on_ready(address: str, stop: threading.Event) -> None:
        _tell_gpu_once()
        trainers = [_start_trainer(address, seed) for seed in range(runs)]
        trainers.append(_start_trainer(address, 0, live=True))
        if sweep_agents:
            trainers += _start_sweep(address, sweep_agents)
        if ui_port is not None:
            _banner(f"http://{_browser_host(config.host)}:{ui_port}/?project=demo", runs)
        try:
            stop.wait()
        finally:
            # Stop the trainers while the ingest still listens, so their last points and
            # their end state (`killed`) arrive instead of sitting in the spool.
            _stop(trainers)

    return run_stack(config, ui_port, on_ready=on_ready)


def _start_trainer(address: str, seed: int, live: bool = False) -> subprocess.Popen:
    command = [sys.executable, "-m", "pulse.demo", "--live" if live else "--train", "--seed", str(seed),
               "--server", address, "--project", "demo"]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL)


def _tell_gpu_once() -> None:
    """Say here whether there are GPU series, and tell the demo's runs (its children) that it was said,
    so they stay quiet: the emitter says it once per process and leaves the environment alone."""
    from emitter.system import NO_GPU_TOLD, GpuSampler

    sampler = GpuSampler.open()
    if sampler is not None:
        sampler.close()
    else:
        os.environ[NO_GPU_TOLD] = "1"


def _start_sweep(address: str, agents: int) -> list[subprocess.Popen]:
    """Register the demo sweep and start `agents` agents on it (their trials end when they stop)."""
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(DEMO_SWEEP, f)  # JSON is YAML
    created = subprocess.run([sys.executable, "-m", "pulse.cli", "sweep", f.name, "--project", "demo",
                              "--server", address], capture_output=True, text=True, timeout=60)
    os.unlink(f.name)
    if created.returncode != 0:
        print(f"pulse demo: could not start the demo sweep: {created.stderr.strip()}", file=sys.stderr)
        return []
    sweep_id = created.stdout.strip().splitlines()[-1].split()[-1]
    print(f"pulse demo: sweep {sweep_id} with {agents} agents", flush=True)
    # --interpreter: the demo's trials need this Python, not whatever `python` is on PATH.
    return [subprocess.Popen([sys.executable, "-m", "pulse.cli", "agent", sweep_id, "--server", address,
                              "--interpreter", sys.executable], stdin=subprocess.DEVNULL) for _ in range(agents)]


def _stop(trainers: list[subprocess.Popen]) -> None:
    for process in trainers:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for process in trainers:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _browser_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host


def _banner(url: str, runs: int) -> None:
    lines = [f"Pulse demo: {runs} training runs and one live run ({LIVE_NAME}, until Ctrl-C) are starting.", "",
             f"Open {url}", "", "Press Ctrl-C to stop."]
    width = max(map(len, lines)) + 4
    print("\n" + "=" * width, *(f"  {line}" for line in lines), "=" * width + "\n", sep="\n", flush=True)


# -- the trainer ---------------------------------------------------------------


def spiral(n_per_class: int, classes: int, rng, noise: float = 0.25):
    """Interleaved 2-D spiral arms, one per class: not linearly separable, quick to learn."""
    import numpy as np

    radius = np.tile(np.linspace(0.05, 1.0, n_per_class), classes)
    label = np.repeat(np.arange(classes), n_per_class)
    angle = label * (2 * np.pi / classes) + radius * 4.0 + rng.normal(0, noise, radius.size)
    points = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    order = rng.permutation(radius.size)
    return points[order].astype(np.float32), label[order]


class MLP:
    """Two layers, ReLU, softmax cross-entropy; plain SGD."""

    def __init__(self, inputs: int, hidden: int, classes: int, rng) -> None:
        import numpy as np

        self.w1 = rng.normal(0, np.sqrt(2 / inputs), (inputs, hidden)).astype(np.float32)
        self.b1 = np.zeros(hidden, np.float32)
        self.w2 = rng.normal(0, np.sqrt(1 / hidden), (hidden, classes)).astype(np.float32)
        self.b2 = np.zeros(classes, np.float32)

    def loss_and_accuracy(self, x, y, lr: float = 0.0) -> tuple[float, float]:
        """Loss and accuracy on (x, y); with `lr` > 0 also take one SGD step on them."""
        import numpy as np

        hidden = np.maximum(x @ self.w1 + self.b1, 0)
        logits = hidden @ self.w2 + self.b2
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        rows = np.arange(len(y))
        loss = float(-np.log(probs[rows, y] + 1e-12).mean())
        accuracy = float((probs.argmax(axis=1) == y).mean())
        if lr > 0:
            grad = probs
            grad[rows, y] -= 1
            grad /= len(y)
            grad_hidden = (grad @ self.w2.T) * (hidden > 0)
            self.w2 -= lr * hidden.T @ grad
            self.b2 -= lr * grad.sum(axis=0)
            self.w1 -= lr * x.T @ grad_hidden
            self.b1 -= lr * grad_hidden.sum(axis=0)
        return loss, accuracy


def train(seed: int, steps: int, lr: float, sleep: float, project: str, name: str | None = None) -> None:
    """Train on the spiral, logging train/* every step and val/* every `eval_every` steps."""
    import numpy as np

    import emitter

    rng = np.random.default_rng(seed)
    classes, hidden, batch, eval_every = 3, 64, 64, 20
    x, y = spiral(700, classes, rng)
    split = len(y) * 4 // 5
    (x_train, y_train), (x_val, y_val) = (x[:split], y[:split]), (x[split:], y[split:])
    config = {"seed": seed, "lr": lr, "hidden": hidden, "batch_size": batch, "steps": steps,
              "dataset": "spiral", "classes": classes}
    model = MLP(2, hidden, classes, rng)
    with emitter.init(project=project, name=name or f"mlp-lr{lr:g}-s{seed}", job_type="demo",
                      tags=["demo", "numpy"], config=config) as run:
        for step in range(steps):
            index = rng.integers(0, split, batch)
            loss, accuracy = model.loss_and_accuracy(x_train[index], y_train[index], lr=lr)
            metrics = {"train/loss": loss, "train/acc": accuracy}
            if step % eval_every == 0 or step == steps - 1:
                metrics["val/loss"], metrics["val/acc"] = model.loss_and_accuracy(x_val, y_val)
            run.log(metrics, step=step)
            if sleep:
                time.sleep(sleep)


def _trainer_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pulse.demo", description="a Pulse demo training run")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--train", action="store_true", help="train one demo model")
    kind.add_argument("--live", action="store_true",
                      help="the long-lived run: logs until stopped, with images, histograms, an alert and watch()")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=None,
                        help=f"learning rate (default: by seed from {LEARNING_RATES})")
    parser.add_argument("--sleep", type=float, default=0.03, help="seconds between steps, so charts move")
    parser.add_argument("--server", default=None, help="ingest host:port (default $PULSE_SERVER)")
    parser.add_argument("--project", default="demo")
    parser.add_argument("--name", default=None)
    parser.add_argument("--live-steps", type=int, default=None, help="end the live run after this many steps")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _trainer_args(argv)
    if args.server:
        os.environ["PULSE_SERVER"] = args.server
    lr = args.lr if args.lr is not None else LEARNING_RATES[args.seed % len(LEARNING_RATES)]
    try:
        if args.live:
            live(args.project, args.sleep, steps=args.live_steps)
        else:
            train(args.seed, args.steps, lr, args.sleep, args.project, args.name)
    except KeyboardInterrupt:
        return 130  # the run was already ended as `killed` on the way out
    return 0


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    import signal

    # SIGTERM (from `pulse demo` stopping) ends the run as `killed`, like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
