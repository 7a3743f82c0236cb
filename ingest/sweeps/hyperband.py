"""Hyperband early termination, decided as W&B's sweep engine decides it.

Read from wandb/sweeps `src/sweeps/hyperband_stopping.py` and the
`hyperband_stopping` definition of `src/sweeps/config/schema.json`:

- An *iteration* is one logged value of the sweep's metric (non-finite values
  dropped), so `history[i]` is the metric's (i+1)-th value.
- Bands are `int(min_iter·eta^k)` for k = 0, 1, ... or, with `max_iter` (which
  wins when both are given), `int(max_iter/eta^k)` for k = 1..s while that is
  at least 1, in increasing order.
- Band b is judged on a run's b-th value as soon as it has b values. The
  threshold at b is the value ranked `int(n/eta)` (0-based, best first) among
  the b-th values of the n runs, finished or not, that have b values.
- A running trial is judged at the latest band it has reached: it is stopped
  when its value is worse than the threshold there. With `strict` (the
  default) its value is its b-th value, without it its best value so far.

`strict` defaults to true: the engine's schema fills `default: true` and the
engine tests `strict is True`. W&B's docs say it defaults to false; where the
docs and the engine disagree, Pulse does what the engine does.

Example:
    band = parse_hyperband({"type": "hyperband", "min_iter": 2, "eta": 2}, problems=[])
    hyperband_stops(band, "minimize", histories={"a": [4, 3, 2, 1], "b": [9, 9, 9]}, running={"b"})
    # {"b": "hyperband: loss ... at band 2 ..."}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .parameters import is_number, unknown

HYPERBAND_KEYS = {"type", "min_iter", "max_iter", "s", "eta", "strict"}
MIN_ITER_BANDS = 100  # the engine lists 100 bands from min_iter
LAST_BAND = 2**62  # past this no history can reach a band (and int() of an infinite band would fail)


@dataclass
class Hyperband:
    eta: float = 3.0
    min_iter: int | None = None
    max_iter: int | None = None
    s: int = 0
    strict: bool = True


def whole(value: Any) -> int | None:
    """An integer, or a float with a whole value (JSON Schema's `integer`), as int; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_hyperband(spec: Any, problems: list[str]) -> Hyperband | None:
    """The `early_terminate` section; each problem found is appended to `problems`."""
    if not isinstance(spec, dict):
        problems.append("early_terminate must be a mapping with type: hyperband")
        return None
    before = len(problems)
    for key in sorted(set(spec) - HYPERBAND_KEYS, key=str):
        problems.append(unknown(key, HYPERBAND_KEYS, "early_terminate key"))
    if spec.get("type") != "hyperband":
        problems.append(f"early_terminate.type must be hyperband, not {spec.get('type')!r}")
    band = Hyperband()
    strict = spec.get("strict", True)
    if not isinstance(strict, bool):
        problems.append(f"early_terminate.strict must be true or false, not {strict!r}")
    else:
        band.strict = strict
    eta = spec.get("eta", 3)
    if not is_number(eta) or eta <= 1:
        problems.append(f"early_terminate.eta must be a number above 1, not {eta!r}")
    else:
        band.eta = float(eta)
    if "max_iter" in spec:  # the engine looks at max_iter first, so it wins over min_iter
        band.max_iter, band.s = whole(spec["max_iter"]), whole(spec.get("s"))
        if band.max_iter is None:
            problems.append(f"early_terminate.max_iter must be an integer, not {spec['max_iter']!r}")
        if band.s is None:
            problems.append(f"early_terminate with max_iter needs s, a whole number of bands (got {spec.get('s')!r})")
    elif "min_iter" in spec:
        band.min_iter = whole(spec["min_iter"])
        if band.min_iter is None or band.min_iter < 1:
            problems.append(f"early_terminate.min_iter must be an integer of at least 1, not {spec['min_iter']!r}")
    else:
        problems.append("early_terminate needs min_iter, or max_iter and s")
    if len(problems) == before and not bands(band):
        problems.append(f"early_terminate: max_iter {band.max_iter}, eta {band.eta:g} and s {band.s} make no band "
                        "(max_iter/eta is below 1, or s is below 1); raise max_iter or s, or lower eta")
    return band if len(problems) == before else None


def bands(config: Hyperband) -> list[int]:
    """The iterations at which runs are judged, in increasing order."""
    if config.max_iter is not None:
        out, band = [], float(config.max_iter)
        for _ in range(config.s):
            band /= config.eta
            if band < 1:
                break
            out.append(int(band))
        return sorted(out)
    out, band = [], float(config.min_iter or 1)
    for _ in range(MIN_ITER_BANDS):
        if band > LAST_BAND:
            break
        out.append(int(band))
        band *= config.eta
    return out


def hyperband_stops(config: Hyperband, goal: str, histories: dict[str, list[float]], running: set[str],
                    metric: str = "the metric") -> dict[str, str]:
    """{run id: reason} for the running trials to stop now; `histories` covers every trial of the sweep."""
    sign = -1.0 if goal == "maximize" else 1.0
    clean = {run: [sign * v for v in values if math.isfinite(v)] for run, values in histories.items()}
    clean = {run: values for run, values in clean.items() if values}
    band_list = bands(config)
    rank = 1.0 / config.eta
    thresholds = []
    for band in band_list:
        at_band = sorted(values[band - 1] for values in clean.values() if len(values) >= band)
        thresholds.append(at_band[int(rank * len(at_band))] if at_band else math.inf)
    stops = {}
    for run in running:
        values = clean.get(run)
        if not values:
            continue
        reached = [(band, threshold) for band, threshold in zip(band_list, thresholds) if band <= len(values)]
        if not reached:
            continue
        band, threshold = reached[-1]
        value = values[band - 1] if config.strict else min(values)
        if value > threshold:
            what = "value at the band" if config.strict else "best value so far"
            stops[run] = (f"hyperband: {metric} {what} {sign * value:g} is worse than the threshold "
                          f"{sign * threshold:g} at band {band} (eta {config.eta:g})")
    return stops
