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


class SummaryTracker:
    def __init__(self) -> None:
        self.last: dict[str, Any] = {}
        self._definitions: list[MetricDefinition] = []
        self._matched: dict[str, MetricDefinition | None] = {}
        self._aggregates: dict[str, dict[str, float]] = {}
        self._counts: dict[str, int] = {}
        self.explicit: dict[str, Any] = {}
        self.version = 0
        self._lock = threading.Lock()

    def define(self, definition: MetricDefinition) -> None:
        with self._lock:
            self._definitions.append(definition)
            self._matched.clear()

    def _definition(self, key: str) -> MetricDefinition | None:
        if key not in self._matched:
            found = None
            for d in self._definitions:
                if d.name == key or fnmatch.fnmatchcase(key, d.name):
                    found = d
            self._matched[key] = found
        return self._matched[key]

    def observe(self, values: dict[str, float]) -> None:
        """One logged record (already coerced to floats)."""
        with self._lock:
            self.last.update(values)
            self.version += 1
            if self._definitions:
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

    def result(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {}
            for key, value in self.last.items():
                d = self._definition(key)
                modes = d.modes if d is not None and d.summary else ["last"]
                if "none" in modes:
                    continue
                if modes == ["last"]:
                    out[key] = value
                    continue
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

    Example:
        run.summary["best_accuracy"] = 0.93
    """

    def __init__(self, tracker: SummaryTracker) -> None:
        self._tracker = tracker

    def __getitem__(self, key: str) -> Any:
        return self._tracker.result()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        raise TypeError("summary entries cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._tracker.result())

    def __len__(self) -> int:
        return len(self._tracker.result())

    def update(self, items: Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        self._tracker.set_explicit(dict(items, **kwargs))

    def __repr__(self) -> str:
        return f"Summary({self._tracker.result()!r})"
