"""Which parameters the next trial gets: grid, random or bayes.

Parameters travel in two shapes: *flat* (`{"optimizer.lr": 0.1}`, what the
search works on) and *nested* (`{"optimizer": {"lr": 0.1}}`, what the
program's config gets, as in W&B's nested `parameters`).

Example:
    config = parse_sweep(yaml.safe_load(open("sweep.yaml")))
    flat, grid_index = next_params(config, observations=[], issued_grid=set(), rng=rng)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import SweepConfig
from .space import Param


@dataclass
class Observation:
    """One issued trial as the search sees it."""

    params: dict[str, Any]  # flat
    value: float | None = None  # the objective, when the trial has one
    pending: bool = False  # still running: its value is not known yet


def grid_point(params: list[Param], index: int) -> dict[str, Any]:
    """The `index`-th grid point; the first parameter varies slowest, like nested for-loops."""
    point: dict[str, Any] = {}
    for param in reversed(params):
        values = param.grid_values()
        index, position = divmod(index, len(values))
        point[param.name] = values[position]
    return {p.name: point[p.name] for p in params}


def next_params(config: SweepConfig, observations: list[Observation], issued_grid: set[int],
                rng: np.random.Generator) -> tuple[dict[str, Any], int] | None:
    """(flat parameters, grid index or -1) for the next trial; None when a grid is used up."""
    if config.method == "grid":
        for index in range(config.grid_size):
            if index not in issued_grid:
                return grid_point(config.params, index), index
        return None
    if config.method == "bayes":
        from .bayes import suggest  # deferred: scikit-learn costs a second to import

        return suggest(config.params, observations, config.goal, rng), -1
    return random_params(config.params, rng), -1


def random_params(params: list[Param], rng: np.random.Generator) -> dict[str, Any]:
    """One independent draw of every parameter.

    As W&B's `random_search.py`: a draw that repeats an earlier trial is kept,
    since redrawing it would skew the stated probabilities of a discrete space.
    """
    return {p.name: p.sample(rng) for p in params}


def key(flat: dict[str, Any]) -> str:
    """A configuration's identity, for spotting repeats."""
    return json.dumps(flat, sort_keys=True, default=str)


def nest(flat: dict[str, Any], params: list[Param]) -> dict[str, Any]:
    """Flat parameters as the nested mapping a program's config gets."""
    out: dict[str, Any] = {}
    for param in params:
        node = out
        for part in param.path[:-1]:
            node = node.setdefault(part, {})
        node[param.path[-1]] = to_plain(flat[param.name])
    return out


def flatten(nested: dict[str, Any], params: list[Param]) -> dict[str, Any]:
    """The inverse of `nest` (parameters missing from `nested` are left out)."""
    flat = {}
    for param in params:
        node: Any = nested
        for part in param.path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            flat[param.name] = node
    return flat


def to_plain(value: Any) -> Any:
    """numpy scalars to Python ones, so JSON and the command line see 3, not np.int64(3)."""
    if isinstance(value, np.generic):
        return value.item()
    return value
