"""Gradient health: Pulse's own diagnosis of exploding, vanishing and NaN/Inf gradients, per parameter.

`watch()` feeds every logged gradient norm through `GradientHealth.observe`
(on the sender thread). A parameter is flagged

- `nonfinite` when its gradient holds NaN or Inf;
- `exploding` when its norm exceeds `explode_factor` times the median of its
  own last `window` norms (once `min_history` norms are known);
- `vanishing` when its norm stays below `vanish_norm` for `vanish_patience`
  consecutive logs.

Each (parameter, kind) is flagged once: an alert (`alerts` table) and an entry
in `run.summary["gradient_health"]`.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, fields
from typing import Any

KINDS = ("nonfinite", "exploding", "vanishing")


@dataclass
class HealthThresholds:
    """When `watch()` flags a gradient. Example: `watch(model, health={"explode_factor": 50})`."""

    explode_factor: float = 20.0
    window: int = 50
    min_history: int = 5
    vanish_norm: float = 1e-8
    vanish_patience: int = 3

    @classmethod
    def of(cls, value: Any) -> HealthThresholds | None:
        """From watch()'s `health` argument: None (defaults), False (off), a dict, or an instance."""
        if value is None or value is True:
            return cls()
        if value is False:
            return None
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            known = {f.name for f in fields(cls)}
            unknown = set(value) - known
            if unknown:
                raise ValueError(f"unknown health thresholds {sorted(unknown)}; known: {sorted(known)}")
            return cls(**value)
        raise TypeError(f"health must be None, False, a dict or HealthThresholds, not {type(value).__name__}")


@dataclass(frozen=True)
class Flag:
    param: str
    kind: str
    step: int
    level: str
    title: str
    text: str


class GradientHealth:
    def __init__(self, thresholds: HealthThresholds) -> None:
        self.thresholds = thresholds
        self._norms: dict[str, deque] = {}
        self._small: dict[str, int] = {}
        self.flagged: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}

    def observe(self, param: str, step: int, norm: float, nonfinite: int) -> list[Flag]:
        """One logged gradient of `param`; the flags it raises for the first time."""
        t = self.thresholds
        flags = []
        if nonfinite:
            flags.append(self._flag(param, "nonfinite", step, "ERROR",
                                    f"{nonfinite} NaN/Inf values in the gradient at step {step}"))
        if not math.isfinite(norm):
            return [f for f in flags if f]
        history = self._norms.setdefault(param, deque(maxlen=t.window))
        if len(history) >= t.min_history:
            median = statistics.median(history)
            if median > 0 and norm > t.explode_factor * median:
                flags.append(self._flag(param, "exploding", step, "WARN",
                                        f"gradient norm {norm:.4g} at step {step} is {norm / median:.3g}x its "
                                        f"running median {median:.4g} (threshold {t.explode_factor:g}x)"))
        history.append(norm)
        small = self._small[param] = self._small.get(param, 0) + 1 if norm < t.vanish_norm else 0
        if small >= t.vanish_patience:
            flags.append(self._flag(param, "vanishing", step, "WARN",
                                    f"gradient norm {norm:.3g} at step {step}, below {t.vanish_norm:g} for "
                                    f"{small} logs in a row"))
        return [f for f in flags if f]

    def _flag(self, param: str, kind: str, step: int, level: str, text: str) -> Flag | None:
        if param in self.flagged[kind]:
            return None
        self.flagged[kind][param] = step
        return Flag(param, kind, step, level, f"Gradient {kind}: {param}", text)

    def summary(self) -> dict[str, dict[str, int]]:
        """For `run.summary["gradient_health"]`: per kind, each flagged parameter and its first step."""
        return {kind: dict(params) for kind, params in self.flagged.items()}
