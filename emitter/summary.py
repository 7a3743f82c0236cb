"""Run summary: the last value of every metric by default, or what `define_metric` asks for.

The tracker runs on the sender thread; the user-facing `Summary` reads its
result and records explicit assignments (`run.summary["best"] = 0.9`), which
win over computed values.
"""

from __future__ import annotations

import fnmatch
import math
import threading
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

AGGREGATES = ("min", "max", "mean", "last", "best", "first", "none")


@dataclass
class MetricDefinition:
    name: str
    step_metric: str = ""
    summary: str = ""
    goal: str = ""
    hidden: bool = False
    step_sync: bool = False  # rows without `step_metric` get its last value (W&B's default with a step_metric)

    def __post_init__(self) -> None:
        for part in self.modes:
            if part not in AGGREGATES:
                raise ValueError(f"summary {part!r} is not one of {AGGREGATES}")
        if self.goal not in ("", "minimize", "maximize"):
            raise ValueError(f"goal must be 'minimize' or 'maximize', not {self.goal!r}")
        if "best" in self.modes and not self.goal:
            raise ValueError("summary='best' needs goal='minimize' or goal='maximize'")

    @property
    def modes(self) -> list[str]:
        return [part.strip() for part in self.summary.split(",") if part.strip()]

    @property
    def is_glob(self) -> bool:
        return any(c in self.name for c in "*?[")

    def merged(self, later: MetricDefinition) -> MetricDefinition:
        """This definition updated by a later one of the same name, as W&B merges them (without
        overwrite=True): what the later one says wins, summaries add up, flags stay set."""
        if not later.summary:
            modes = self.modes
        elif "none" in later.modes:
            modes = ["none"]
        else:
            modes = [m for m in dict.fromkeys(self.modes + later.modes) if m != "none"]
        return MetricDefinition(self.name, later.step_metric or self.step_metric, ",".join(modes),
                                later.goal or self.goal, self.hidden or later.hidden, self.step_sync or later.step_sync)


class SummaryTracker:
    def __init__(self) -> None:
        self.last: dict[str, Any] = {}
        self._exact: dict[str, MetricDefinition] = {}
        self._globs: dict[str, MetricDefinition] = {}  # in definition order: the last that matches wins
        self._matched: dict[str, MetricDefinition | None] = {}
        self._aggregates: dict[str, dict[str, float]] = {}
        self._counts: dict[str, int] = {}
        self.explicit: dict[str, Any] = {}
        self.version = 0
        self._lock = threading.Lock()

    def define(self, definition: MetricDefinition, overwrite: bool = False) -> MetricDefinition:
        """Add (or, by name, merge into an earlier one unless `overwrite`) a definition; the one now in force."""
        with self._lock:
            table = self._globs if definition.is_glob else self._exact
            earlier = table.pop(definition.name, None)
            if earlier is not None and not overwrite:
                definition = earlier.merged(definition)
            table[definition.name] = definition  # a redefined glob counts as the latest
            self._matched.clear()
            return definition

    def synced_steps(self) -> set[str]:
        """The step metrics that definitions with `step_sync` add to rows lacking them."""
        with self._lock:
            return {d.step_metric for table in (self._exact, self._globs) for d in table.values() if d.step_sync}

    def definition(self, key: str) -> MetricDefinition | None:
        """The definition for a logged key (any thread)."""
        with self._lock:
            return self._definition(key)

    def _definition(self, key: str) -> MetricDefinition | None:
        """An exact definition beats every glob; among globs the last defined that matches wins."""
        if key not in self._matched:
            found = self._exact.get(key)
            if found is None:
                for d in reversed(self._globs.values()):
                    if fnmatch.fnmatchcase(key, d.name):
                        found = d
                        break
            self._matched[key] = found
        return self._matched[key]

    def observe(self, values: dict[str, float]) -> None:
        """One logged record (already coerced to floats)."""
        with self._lock:
            self.last.update(values)
            self.version += 1
            if self._exact or self._globs:
                for key, value in values.items():
                    d = self._definition(key)
                    if d is not None and d.summary:
                        self._aggregate(key, value, d)

    def _aggregate(self, key: str, value: float, d: MetricDefinition) -> None:
        agg = self._aggregates.setdefault(key, {})
        n = self._counts[key] = self._counts.get(key, 0) + 1
        if math.isnan(value):
            return
        agg["min"] = min(agg.get("min", value), value)
        agg["max"] = max(agg.get("max", value), value)
        agg["mean"] = agg.get("mean", 0.0) + (value - agg.get("mean", 0.0)) / n
        agg.setdefault("first", value)
        agg["best"] = agg["min"] if d.goal == "minimize" else agg["max"]

    def result(self, recent: dict[str, Any] | None = None) -> dict[str, Any]:
        """The summary as the sender has seen the run; with `recent` (the plain values `log()` took
        on the caller's thread, newer than that), their values stand for each key's last value."""
        with self._lock:
            out: dict[str, Any] = {}
            last = {**self.last, **recent} if recent else self.last
            for key, value in last.items():
                d = self._definition(key)
                modes = d.modes if d is not None and d.summary else ["last"]
                if "none" in modes:
                    continue
                if modes == ["last"]:
                    out[key] = value
                    continue
                if key not in self.last:
                    continue  # its min, max, ... are the sender's to compute: not yet
                agg = self._aggregates.get(key, {})
                out[key] = {m: (value if m == "last" else agg.get(m)) for m in modes}
            out.update(self.explicit)
            return out

    def set_explicit(self, items: dict[str, Any]) -> None:
        with self._lock:
            self.explicit.update(items)
            self.version += 1


class Summary(MutableMapping):
    """`run.summary`: read the computed summary, or set your own entries.

    A value `log()` took is readable at once, as in W&B: the sender computes the summary later,
    so reads see the caller's last plain values (`recent`) over the sender's.

    Example:
        run.summary["best_accuracy"] = 0.93
    """

    def __init__(self, tracker: SummaryTracker, recent: dict[str, Any] | None = None) -> None:
        self._tracker = tracker
        self._recent = recent if recent is not None else {}

    def _current(self) -> dict[str, Any]:
        return self._tracker.result(self._recent)

    def __getitem__(self, key: str) -> Any:
        return self._current()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise TypeError("summary entries cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())

    def update(self, items: Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        self._tracker.set_explicit(dict(items, **kwargs))

    def __repr__(self) -> str:
        return f"Summary({self._current()!r})"


class StepSync:
    """`define_metric(..., step_metric=s, step_sync=True)` on the caller's thread: a logged row with
    such a metric but without `s` gets `s`'s last logged value, as W&B adds it to the row (0 until
    `s` is first logged, as in W&B). Only runs that define one pay for it.

    Example:
        run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
        run.log({"trainer/global_step": 7, "loss": 0.5})
        run.log({"val/acc": 0.9})  # stored with trainer/global_step = 7
    """

    def __init__(self, tracker: SummaryTracker) -> None:
        self._tracker = tracker
        self._latest: dict[str, Any] = {}
        self._step_of: dict[str, str] = {}  # logged key -> its synced step metric ("" for none)

    def refresh(self) -> None:
        """Definitions changed: forget which key syncs which step metric."""
        self._step_of = {}
        for step in self._tracker.synced_steps():
            self._latest.setdefault(step, 0)

    def fill(self, row: dict) -> None:
        """Add the missing step metrics to `row` (a dict log() owns)."""
        latest, step_of = self._latest, self._step_of
        if len(step_of) > 100_000:
            step_of.clear()  # keys made up per step (f"sample_{i}") must not grow this forever
        for step in latest:
            if step in row:
                latest[step] = row[step]
        missing = {}
        for key in row:
            step = step_of.get(key)
            if step is None:
                d = self._tracker.definition(key)
                step = step_of[key] = d.step_metric if d is not None and d.step_sync else ""
            if step and step not in row:
                missing[step] = latest.get(step, 0)
        row.update(missing)
