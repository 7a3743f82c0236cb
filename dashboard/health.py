"""Gradient-health flags of a run, gathered from everywhere the emitter leaves them.

`watch()` raises each flag once per parameter and kind as an alert titled
`Gradient <kind>: <param>` and lists it in `summary["gradient_health"]`
(`{kind: {param: first step}}`); histograms count their NaN/Inf values too. A flag
found in any of the three is shown, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

KINDS = {"nonfinite": "NaN/Inf gradients", "exploding": "Exploding gradients", "vanishing": "Vanishing gradients"}
_TITLE = re.compile(r"^Gradient (nonfinite|exploding|vanishing): (.+)$")
GRADIENT_PREFIX = "gradients/"


@dataclass(frozen=True)
class Flag:
    kind: str
    param: str
    step: int | None
    level: str
    text: str


def gradient_flags(alerts: pd.DataFrame, summary: dict[str, Any], histogram_keys: pd.DataFrame) -> list[Flag]:
    """Every flag, NaN/Inf first, then exploding, then vanishing; each by its first step."""
    found: dict[tuple[str, str], Flag] = {}
    steps = _summary_steps(summary)
    for title, level, text in zip(alerts.get("title", []), alerts.get("level", []), alerts.get("text", [])):
        match = _TITLE.match(title)
        if match:
            kind, param = match.groups()
            found.setdefault((kind, param), Flag(kind, param, steps.get((kind, param)), level, text))
    for (kind, param), step in steps.items():
        found.setdefault((kind, param), Flag(kind, param, step, "ERROR" if kind == "nonfinite" else "WARN",
                                             f"flagged at step {step}"))
    for key, nonfinite, step in zip(histogram_keys.get("key", []), histogram_keys.get("nonfinite_total", []),
                                    histogram_keys.get("first_nonfinite_step", [])):
        if nonfinite and key.startswith(GRADIENT_PREFIX):
            param = key.removeprefix(GRADIENT_PREFIX)
            found.setdefault(("nonfinite", param), Flag(
                "nonfinite", param, int(step), "ERROR",
                f"{int(nonfinite):,} NaN/Inf values in its logged gradients, first at step {int(step)}"))
    order = list(KINDS)
    return sorted(found.values(), key=lambda f: (order.index(f.kind), f.step if f.step is not None else 0, f.param))


def watch_ran(summary: dict[str, Any], histogram_keys: pd.DataFrame, metric_keys: list[str]) -> bool:
    """Whether the run has anything `watch()` writes: a gradient-health summary, gradient norms or
    histograms. Without, the absence of flags means nothing was checked, not that all is well."""
    if isinstance(summary, dict) and isinstance(summary.get("gradient_health"), dict):
        return True
    if any(key.startswith(GRADIENT_PREFIX) for key in histogram_keys.get("key", [])):
        return True
    return any(key.startswith("grad_norm/") for key in metric_keys)


def other_alerts(alerts: pd.DataFrame) -> pd.DataFrame:
    """The alerts that are not gradient-health flags (`emitter.alert(...)`)."""
    if alerts.empty:
        return alerts
    return alerts[~alerts["title"].str.match(_TITLE.pattern)]


def _summary_steps(summary: dict[str, Any]) -> dict[tuple[str, str], int | None]:
    health = summary.get("gradient_health") if isinstance(summary, dict) else None
    steps: dict[tuple[str, str], int | None] = {}
    if not isinstance(health, dict):
        return steps
    for kind, params in health.items():
        if kind in KINDS and isinstance(params, dict):
            for param, step in params.items():
                steps[(kind, param)] = int(step) if isinstance(step, (int, float)) else None
    return steps
