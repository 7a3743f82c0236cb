"""Hyperband early termination with W&B's semantics.

An *iteration* is one logged value of the sweep's metric, so `history[i]` is
the metric's (i+1)-th value. Bands are `min_iter·eta^k` (or `max_iter/eta^k`
for k = 1..s). At each band the threshold is the value ranked `int(n/eta)`
(0-based, best first) among the n trials, finished or not, that reached it. A
running trial is judged at the latest band it has passed: it is stopped when
its best value so far (strict: its value at that band) is worse than the
threshold there.

Example:
    hyperband_stops(Hyperband(eta=2, min_iter=2), "minimize",
                    histories={"a": [4, 3, 2, 1], "b": [9, 9, 9]}, running={"b"})
    # {"b": "hyperband: loss ... at band 2 ..."}
"""

from __future__ import annotations

import math

from .config import Hyperband

MAX_BANDS = 64


def bands(config: Hyperband) -> list[int]:
    if config.min_iter is not None:
        out, band = [], float(config.min_iter)
        while len(out) < MAX_BANDS and band < 2**40:
            out.append(int(band))
            band *= config.eta
        return out
    out, band = [], float(config.max_iter or 0)
    for _ in range(config.s):
        band /= config.eta
        if band < 1:
            break
        out.append(int(band))
    return sorted(set(out))


def hyperband_stops(config: Hyperband, goal: str, histories: dict[str, list[float]], running: set[str],
                    metric: str = "the metric") -> dict[str, str]:
    """{run id: reason} for the running trials to stop now."""
    sign = -1.0 if goal == "maximize" else 1.0
    clean = {run: [sign * v for v in values if math.isfinite(v)] for run, values in histories.items()}
    clean = {run: values for run, values in clean.items() if values}
    band_list = bands(config)
    rank = 1.0 / config.eta
    thresholds = []
    for band in band_list:
        at_band = sorted(values[band] for values in clean.values() if len(values) > band)
        thresholds.append(at_band[int(rank * len(at_band))] if at_band else math.inf)
    stops = {}
    for run in running:
        values = clean.get(run)
        if not values:
            continue
        passed = [(band, threshold) for band, threshold in zip(band_list, thresholds) if band < len(values)]
        if not passed:
            continue
        band, threshold = passed[-1]
        value = values[band] if config.strict else min(values)
        if value > threshold:
            what = "value at the band" if config.strict else "best value so far"
            stops[run] = (f"hyperband: {metric} {what} {sign * value:g} is worse than the threshold "
                          f"{sign * threshold:g} at band {band} (eta {config.eta:g})")
    return stops
