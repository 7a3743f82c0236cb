"""The demo's long-lived run: it logs until stopped, so every page has something live to show.

Whenever a newcomer arrives, this run is running: train/val curves (Charts), system samples (System),
an image of the decision regions and histograms of the hidden layer (Media), an alert when it first
learns the spiral, and with torch installed a small torch model under `watch(log_graph=True)`
(Model: its graph, gradient and weight histograms). Without torch it says once that watch() needs it.

    python -m pulse.demo --live --server 127.0.0.1:50051 --project demo
"""

from __future__ import annotations

import itertools
import time

LIVE_NAME = "live-mlp"
IMAGE_EVERY = 100  # steps between decision-region images and hidden-layer histograms
GRID = 48  # pixels per side of the decision-region image
COLOURS = ((230, 85, 13), (49, 130, 189), (49, 163, 84))


def live(project: str, sleep: float, seed: int = 7, steps: int | None = None) -> None:
    """Train the numpy MLP on the spiral forever (or `steps` steps), logging everything the pages show."""
    import numpy as np

    import emitter
    from pulse.demo import MLP, spiral

    rng = np.random.default_rng(seed)
    x, y = spiral(700, 3, rng)
    split = len(y) * 4 // 5
    model = MLP(2, 64, 3, rng)
    torch_part = _TorchPart.make(x[:split], y[:split])
    config = {"lr": 0.1, "hidden": 64, "dataset": "spiral", "live": True, "torch": torch_part is not None}
    with emitter.init(project=project, name=LIVE_NAME, job_type="demo", tags=["demo", "live"], config=config) as run:
        if torch_part is None:
            print("pulse demo: watch() needs torch (pip install torch==2.13.0): the live run logs without "
                  "the Model page's graph and gradients", flush=True)
        else:
            emitter.watch(torch_part.model, log="all", log_freq=50, log_graph=True)
        learned = False
        for step in itertools.count() if steps is None else range(steps):
            index = rng.integers(0, split, 64)
            loss, accuracy = model.loss_and_accuracy(x[index], y[index], lr=0.1)
            metrics = {"train/loss": loss, "train/acc": accuracy}
            if step % 20 == 0:
                metrics["val/loss"], metrics["val/acc"] = model.loss_and_accuracy(x[split:], y[split:])
                if metrics["val/acc"] > 0.9 and not learned:
                    learned = True
                    run.alert("Spiral learned", f"val/acc {metrics['val/acc']:.3f} at step {step}", "INFO")
            if torch_part is not None:
                metrics["torch/loss"] = torch_part.step(rng)
            if step % IMAGE_EVERY == 0:
                metrics["decision_regions"] = emitter.Image(_regions(model), caption=f"step {step}")
                metrics["hidden/activations"] = emitter.Histogram(np.maximum(x[split:] @ model.w1 + model.b1, 0))
                metrics["weights/w1"] = emitter.Histogram(model.w1)
            run.log(metrics, step=step)
            if sleep:
                time.sleep(sleep)


def _regions(model):
    """An RGB image of the class the model predicts over [-1, 1]^2."""
    import numpy as np

    axis = np.linspace(-1, 1, GRID, dtype=np.float32)
    points = np.stack(np.meshgrid(axis, -axis), axis=-1).reshape(-1, 2)
    hidden = np.maximum(points @ model.w1 + model.b1, 0)
    predicted = (hidden @ model.w2 + model.b2).argmax(axis=1)
    return np.asarray(COLOURS, dtype=np.uint8)[predicted].reshape(GRID, GRID, 3)


class _TorchPart:
    """A small torch MLP on the same data, for watch(); None without torch."""

    def __init__(self, torch, x, y) -> None:
        self.torch = torch
        self.x, self.y = torch.tensor(x), torch.tensor(y, dtype=torch.long)
        self.model = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

    @classmethod
    def make(cls, x, y) -> _TorchPart | None:
        try:
            import torch
        except ImportError:
            return None
        return cls(torch, x, y)

    def step(self, rng) -> float:
        index = self.torch.tensor(rng.integers(0, len(self.y), 64))
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x[index]), self.y[index])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
