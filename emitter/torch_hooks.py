"""`watch(model)`: gradient and parameter histograms and norms, computed on the parameter's device.

W&B semantics: `log_freq` counts backward passes (each parameter logs at
its `log_freq`-th, `2 * log_freq`-th, ... gradient), and what is logged
attaches to the step the user's next `log()` commits. Per parameter and
logging pass, a hook that runs right after the gradient is accumulated
queues one small tensor computed on the device, without waiting for it:

    [nonfinite, sum, min, max, norm, low edge, high edge, 64 bucket counts]

(`min`, `max`, `sum` and the buckets cover the finite values; the buckets
are `torch.histc` over [min, max]). The sender thread copies it to the host,
the one device-to-host copy per parameter, and turns it into a
`gradients/<name>` (or `parameters/<name>`) histogram, a `grad_norm/<name>`
(or `param_norm/<name>`) scalar, and the gradient-health checks.
"""

from __future__ import annotations

import logging
import math
import time
import weakref
from typing import Any

import torch

from pulse.v1 import telemetry_pb2 as pb

from .graph import FORMAT, HookTracer, describe
from .health import GradientHealth, HealthThresholds

log = logging.getLogger("pulse")
BINS = 64
HEAD = 7  # nonfinite, sum, min, max, norm, low edge, high edge
CHUNK = 1 << 24  # histc counts in float32: exact up to 2**24 per call
LOG_KINDS = ("gradients", "parameters", "all", None)


def tensor_stats(t: torch.Tensor, bins: int = BINS) -> torch.Tensor:
    """The statistics above as one float64 tensor on t's device; queues work, never synchronises."""
    x = t.detach().reshape(-1)
    if not x.is_floating_point() or x.element_size() < 4:
        x = x.float()
    if x.numel() == 0:
        return torch.zeros(HEAD + bins, dtype=torch.float64, device=x.device)
    finite = torch.isfinite(x)
    nonfinite = x.numel() - finite.sum()
    low = torch.where(finite, x, math.inf).amin()
    high = torch.where(finite, x, -math.inf).amax()
    total = torch.where(finite, x, 0.0).sum()
    norm = torch.linalg.vector_norm(x)  # what p.grad.norm() says, NaN included
    flat = low == high
    low_edge = torch.where(flat, low - 1, low)  # as torch.histc widens a zero range
    high_edge = torch.where(flat, high + 1, high)
    # Scaled into [0, 1], so histc needs no host-side range; NaN and Inf fall outside and are skipped.
    # With a power-of-two bin count this bins exactly as torch.histc(x, bins, low, high) does.
    scaled = (x - low_edge) / (high_edge - low_edge)
    counts = _bucket_counts(scaled, bins)
    head = torch.stack([nonfinite.to(torch.float64), total.double(), low.double(), high.double(), norm.double(),
                        low_edge.double(), high_edge.double()])
    return torch.cat([head, counts.double()])


def _bucket_counts(scaled: torch.Tensor, bins: int) -> torch.Tensor:
    if scaled.is_cuda and torch.are_deterministic_algorithms_enabled():
        return counts_by_sorting(scaled, bins)  # CUDA's histc is refused in deterministic mode
    counts = torch.zeros(bins, dtype=torch.int64, device=scaled.device)
    for chunk in scaled.split(CHUNK):
        counts += torch.histc(chunk, bins, 0, 1).long()
    return counts


def counts_by_sorting(scaled: torch.Tensor, bins: int) -> torch.Tensor:
    """What histc(scaled, bins, 0, 1) counts, by sorting bin indices: deterministic everywhere."""
    inside = (scaled >= 0) & (scaled <= 1)  # False for NaN and Inf
    index = torch.where(inside, (torch.where(inside, scaled, 0) * bins).long().clamp(max=bins - 1), bins)
    bounds = torch.searchsorted(torch.sort(index).values, torch.arange(bins + 1, device=scaled.device))
    return bounds.diff()


class ParamStats:
    """One parameter's statistics at one logging pass, queued as ("deferred", stats)."""

    __slots__ = ("key", "step", "ts_us", "numel", "packed", "kinds", "watch")
    weight = 2

    def __init__(self, key: str, step: int, ts_us: int, numel: int, packed: torch.Tensor,
                 kinds: tuple[str, ...], watch: RunWatch) -> None:
        self.key, self.step, self.ts_us, self.numel = key, step, ts_us, numel
        self.packed, self.kinds, self.watch = packed, kinds, watch

    def encode(self, batch: pb.Batch) -> tuple[int, int, dict]:
        values = self.packed.tolist()  # the device-to-host copy; waits for the device, on this thread
        row = {}
        size = HEAD + BINS
        for i, kind in enumerate(self.kinds):
            stats = values[i * size:(i + 1) * size]
            nonfinite, total, low, high, norm, low_edge, high_edge = stats[:HEAD]
            counts = [int(c) for c in stats[HEAD:]]
            if nonfinite == self.numel:  # nothing finite: an empty histogram
                low = high = low_edge = high_edge = 0.0
            edges = [low_edge + (high_edge - low_edge) * j / BINS for j in range(BINS)] + [high_edge]
            batch.histograms.append(pb.Histogram(
                key=f"{kind}/{self.key}", step=self.step, ts_us=self.ts_us, count=self.numel, sum=total,
                min=low, max=high, nonfinite=int(nonfinite), bucket_edges=edges, bucket_counts=counts))
            if kind == "gradients":
                row[f"grad_norm/{self.key}"] = norm
                self.watch.check_health(batch, self.key, self.step, norm, int(nonfinite))
            else:
                row[f"param_norm/{self.key}"] = norm
        return self.step, self.ts_us, row


class Watcher:
    """The hooks on one model."""

    def __init__(self, watch: RunWatch, model: torch.nn.Module, prefix: str, kinds: tuple[str, ...],
                 log_freq: int) -> None:
        self.watch = watch
        self.model = model
        self.prefix = prefix
        self.kinds = kinds
        self.log_freq = log_freq
        self.handles: list[Any] = []
        self.tracer: HookTracer | None = None
        self.errors = 0
        if kinds:
            for name, param in model.named_parameters():
                if param.requires_grad:
                    self.handles.append(param.register_post_accumulate_grad_hook(self._hook(prefix + name)))

    def _hook(self, key: str):
        backwards = 0

        def after_accumulate(param: torch.Tensor) -> None:
            nonlocal backwards
            backwards += 1
            if backwards < self.log_freq:
                return
            backwards = 0
            try:
                self._record(key, param)
            except Exception as exc:  # never break the user's backward pass; counted, logged once
                self.errors += 1
                if self.errors == 1:
                    log.warning("pulse: watch() failed on %s (%s: %s); it goes on", key, type(exc).__name__, exc)
                run = self.watch.run()
                if run is not None:
                    run.tracker.set_explicit({"_pulse/watch_errors": self.errors})

        return after_accumulate

    def _record(self, key: str, param: torch.Tensor) -> None:
        run = self.watch.run()
        if run is None or run._disabled:
            return
        kinds = tuple(kind for kind in self.kinds if kind == "parameters" or param.grad is not None)
        if kinds:
            with torch.no_grad():
                parts = [tensor_stats(param.grad if kind == "gradients" else param) for kind in kinds]
            packed = parts[0] if len(parts) == 1 else torch.cat(parts)  # one copy to the host, later
            run._enqueue("deferred", ParamStats(key, run.step, time.time_ns() // 1000, param.numel(), packed,
                                                kinds, self.watch))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        if self.tracer is not None:
            self.tracer.remove()


class RunWatch:
    """A run's watched models, its gradient-health state and its model graphs."""

    def __init__(self, run: Any) -> None:
        self.run = weakref.ref(run)
        self.watchers: dict[int, Watcher] = {}
        self.models = 0
        self.health: GradientHealth | None = None
        self.graphs: dict[str, dict] = {}

    def check_health(self, batch: pb.Batch, key: str, step: int, norm: float, nonfinite: int) -> None:
        """On the sender thread: new flags become alerts in this batch and update the summary."""
        if self.health is None:
            return
        flags = self.health.observe(key, step, norm, nonfinite)
        for flag in flags:
            batch.events.append(pb.Event(alert=pb.Alert(ts_us=time.time_ns() // 1000, level=flag.level,
                                                         title=flag.title, text=flag.text)))
        run = self.run()
        if flags and run is not None:
            run.tracker.set_explicit({"gradient_health": self.health.summary()})

    def add_graph(self, graph: dict) -> None:
        self.graphs[graph["prefix"]] = graph
        run = self.run()
        if run is not None:
            run._enqueue("graph", {"format": FORMAT, "models": list(self.graphs.values())})


_runs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def watch(run: Any, models: Any, criterion: Any = None, log: str | None = "gradients", log_freq: int = 1000,
          idx: int | None = None, log_graph: bool = False, health: Any = None) -> None:
    """See `emitter.watch`."""
    if log not in LOG_KINDS:
        raise ValueError(f"log must be one of {LOG_KINDS}, not {log!r}")
    if not isinstance(log_freq, int) or log_freq < 1:
        raise ValueError(f"log_freq must be a positive integer, not {log_freq!r}")
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    for model in models:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"watch() takes torch.nn.Module objects, not {type(model).__name__}")
    thresholds = HealthThresholds.of(health)
    state = _runs.get(run)
    if state is None:
        state = _runs[run] = RunWatch(run)
    if thresholds is None:
        state.health = None
    elif state.health is None:
        state.health = GradientHealth(thresholds)
    elif health is not None:
        state.health.thresholds = thresholds
    if state.health is not None:
        run.summary["gradient_health"] = state.health.summary()
    kinds = {"gradients": ("gradients",), "parameters": ("parameters",), "all": ("gradients", "parameters"),
             None: ()}[log]
    for model in models:
        old = state.watchers.pop(id(model), None)
        if old is not None:
            old.remove()  # watching again replaces the earlier hooks
        index = idx if idx is not None else state.models
        state.models += 1
        prefix = "" if index == 0 else f"model{index}/"
        watcher = state.watchers[id(model)] = Watcher(state, model, prefix, kinds, log_freq)
        if log_graph:
            graph = describe(model, prefix)
            if graph["edges"] is not None:
                state.add_graph(graph)
            else:
                watcher.tracer = HookTracer(model, lambda edges, graph=graph: state.add_graph(
                    {**graph, "dataflow": "forward hooks", "edges": edges}))


def unwatch(models: Any = None) -> None:
    """See `emitter.unwatch`: in every run."""
    targets = None if models is None else {id(m) for m in (models if isinstance(models, (list, tuple)) else [models])}
    for state in list(_runs.values()):
        for key in list(state.watchers):
            if targets is None or key in targets:
                state.watchers.pop(key).remove()
