"""`watch(model)`: gradient and parameter histograms and norms, computed on the parameter's device.

W&B semantics: `log_freq` counts backward passes (each parameter logs at
its `log_freq`-th, `2 * log_freq`-th, ... gradient), and what is logged
attaches to the step the user's next `log()` commits. Per tensor and
logging pass, one row of statistics is computed on the device, without
waiting for it (see tensor_stats). A hook that runs right after a
parameter's gradient is accumulated computes the rows of a large tensor at
once (`tensor_stats`); the small ones, a model's biases, norms and small
layers, wait for the end of the backward pass and are computed together in
a fixed number of kernels (`group_stats`), since on a GPU each small tensor
would cost some thirty kernel launches for a few microseconds of work. The
sender thread copies the rows to the host, one device-to-host copy per
batch of rows, and turns each into a `gradients/<name>` (or
`parameters/<name>`) histogram, a `grad_norm/<name>` (or
`param_norm/<name>`) scalar, and the gradient-health checks.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import torch

from pulse.v1 import telemetry_pb2 as pb

from .graph import HookTracer, describe, document, with_dataflow
from .health import GradientHealth, HealthThresholds
from .tensor_stats import BINS, HEAD, flatten, group_stats, small_limit, tensor_stats

log = logging.getLogger("pulse")
LOG_KINDS = ("gradients", "parameters", "all", None)
# Small tensors (`small_limit`) are computed together at the end of the backward pass, BATCH
# elements at a time at most (bounding the temporary memory on the device).
BATCH = 1 << 22


class Statistics:
    """Rows of statistics (`tensor_stats`) of watched tensors at one logging pass, queued as ("deferred", stats)."""

    __slots__ = ("key", "step", "ts_us", "entries", "packed", "watch", "weight")

    def __init__(self, step: int, ts_us: int, entries: list[tuple[str, str, int]], packed: torch.Tensor,
                 watch: RunWatch) -> None:
        self.key = f"{entries[0][1]}/{entries[0][0]}"  # what a failure names
        self.step, self.ts_us, self.entries, self.packed, self.watch = step, ts_us, entries, packed, watch
        self.weight = 1 + len(entries)  # a histogram and a norm each

    def encode(self, batch: pb.Batch) -> tuple[int, int, dict]:
        rows = self.packed.tolist()  # the device-to-host copy; waits for the device, on this thread
        norms = {}
        for (key, kind, numel), stats in zip(self.entries, rows):
            nonfinite, total, low, high, norm, low_edge, high_edge = stats[:HEAD]
            counts = [int(c) for c in stats[HEAD:]]
            if nonfinite == numel:  # nothing finite: an empty histogram
                low = high = low_edge = high_edge = 0.0
            edges = [low_edge + (high_edge - low_edge) * j / BINS for j in range(BINS)] + [high_edge]
            batch.histograms.append(pb.Histogram(
                key=f"{kind}/{key}", step=self.step, ts_us=self.ts_us, count=numel, sum=total, min=low, max=high,
                nonfinite=int(nonfinite), bucket_edges=edges, bucket_counts=counts))
            if kind == "gradients":
                norms[f"grad_norm/{key}"] = norm
                self.watch.check_health(batch, key, self.step, norm, int(nonfinite))
            else:
                norms[f"param_norm/{key}"] = norm
        return self.step, self.ts_us, norms


class PassBatch:
    """The small tensors one backward pass logs, computed together (`group_stats`) when the pass ends.

    The autograd engine holds it (its final callback) until then; the run's
    RunWatch only a weak reference, so a backward pass that fails before its
    callbacks run takes its batch, and the tensors it holds, with it.
    """

    def __init__(self, watch: RunWatch, run: Any) -> None:
        self.watch, self.run = watch, weakref.ref(run)
        self.step, self.ts_us = run.step, time.time_ns() // 1000
        self.groups: dict[tuple, tuple[list, list]] = {}  # (device, dtype): (entries, flat tensors)
        self.elements: dict[tuple, int] = {}
        self.done = False

    def add(self, entry: tuple[str, str, int], flat: torch.Tensor) -> None:
        group = (flat.device, flat.dtype)
        entries, flats = self.groups.setdefault(group, ([], []))
        entries.append(entry)
        flats.append(flat)
        self.elements[group] = self.elements.get(group, 0) + flat.numel()
        if self.elements[group] >= BATCH:
            self._compute(group)

    def finish(self) -> None:
        """The engine's final callback: runs inside the user's backward(), so it never raises."""
        self.done = True
        for group in list(self.groups):
            self._compute(group)

    def _compute(self, group: tuple) -> None:
        entries, flats = self.groups.pop(group)
        del self.elements[group]
        run = self.run()
        if run is None or run._disabled:
            return
        try:
            with torch.no_grad():
                packed = group_stats(flats)
            run._enqueue("deferred", Statistics(self.step, self.ts_us, entries, packed, self.watch))
        except Exception as exc:
            self.watch.failed(f"{entries[0][1]}/{entries[0][0]} and {len(entries) - 1} more", exc)


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
            except Exception as exc:  # never break the user's backward pass
                self.watch.failed(key, exc)

        return after_accumulate

    def _record(self, key: str, param: torch.Tensor) -> None:
        run = self.watch.run()
        if run is None or run._disabled:
            return
        alone = []
        with torch.no_grad():
            for kind in self.kinds:
                tensor = param.grad if kind == "gradients" else param
                if tensor is None:
                    continue
                entry = (key, kind, tensor.numel())
                if 0 < tensor.numel() <= small_limit(tensor.device):
                    self.watch.defer(run, entry, flatten(tensor))
                else:
                    alone.append((entry, tensor_stats(tensor)))
        if alone:
            run._enqueue("deferred", Statistics(run.step, time.time_ns() // 1000, [e for e, _ in alone],
                                                torch.stack([stats for _, stats in alone]), self.watch))

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
        self.graphs: dict[str, Any] = {}  # prefix -> pulse.v1.Model
        self.errors = 0
        self._pass: Callable[[], PassBatch | None] = lambda: None

    def defer(self, run: Any, entry: tuple[str, str, int], flat: torch.Tensor) -> None:
        """Add a small tensor to this backward pass's batch (a new one at a pass's first)."""
        batch = self._pass()
        if batch is None or batch.done:
            batch = PassBatch(self, run)
            try:
                torch.autograd.Variable._execution_engine.queue_callback(batch.finish)
            except RuntimeError:  # not inside a backward pass (a hook called by hand): compute at once
                batch.add(entry, flat)
                batch.finish()
                return
            self._pass = weakref.ref(batch)
        batch.add(entry, flat)

    def failed(self, what: str, exc: Exception) -> None:
        """A failure computing statistics: counted in the summary and logged once; training goes on."""
        self.errors += 1
        if self.errors == 1:
            log.warning("pulse: watch() failed on %s (%s: %s); it goes on", what, type(exc).__name__, exc)
        run = self.run()
        if run is not None:
            run.tracker.set_explicit({"_pulse/watch_errors": self.errors})

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

    def add_graph(self, graph: Any) -> None:
        self.graphs[graph.prefix] = graph
        run = self.run()
        if run is not None:
            run._enqueue("graph", document(list(self.graphs.values())))


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
            if graph.dataflow != "none":
                state.add_graph(graph)
            else:
                watcher.tracer = HookTracer(model, lambda edges, graph=graph: state.add_graph(
                    with_dataflow(graph, edges, "forward hooks")))


def unwatch(models: Any = None) -> None:
    """See `emitter.unwatch`: in every run."""
    targets = None if models is None else {id(m) for m in (models if isinstance(models, (list, tuple)) else [models])}
    for state in list(_runs.values()):
        for key in list(state.watchers):
            if targets is None or key in targets:
                state.watchers.pop(key).remove()
