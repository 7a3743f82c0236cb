"""One sweep parameter: its W&B distribution, how to sample it, its grid, and its [0, 1] map.

Semantics follow W&B's sweeps: `log_uniform` takes natural-log exponents as
min/max, the `*_values` forms take the values themselves; `q_*` forms round
to multiples of `q` (an integer `q` gives integers); `int_uniform` includes
both ends. Bayes search sees every parameter through `to_unit`/`from_unit`:
uniform in the value, in its log, or through the distribution's CDF, so a
step of 0.1 in the unit cube means the same amount of "prior mass" anywhere.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CONTINUOUS = {"uniform", "q_uniform", "log_uniform", "log_uniform_values", "q_log_uniform",
              "q_log_uniform_values", "inv_log_uniform", "inv_log_uniform_values", "normal", "q_normal",
              "log_normal", "q_log_normal", "beta", "q_beta"}
DISTRIBUTIONS = {"constant", "categorical", "int_uniform"} | CONTINUOUS
# Distributions whose bounds are (min, max) in the parameter's own units or in log space.
BOUNDED = {"uniform", "q_uniform", "int_uniform", "log_uniform", "log_uniform_values", "q_log_uniform",
           "q_log_uniform_values", "inv_log_uniform", "inv_log_uniform_values"}
EDGE = 1e-6  # unit values are kept this far inside (0, 1) so CDF inverses stay finite


@dataclass
class Param:
    """A leaf parameter; `path` is its place in the nested `parameters` tree."""

    path: tuple[str, ...]
    distribution: str
    values: list[Any] = field(default_factory=list)  # constant (one value) and categorical
    probabilities: list[float] | None = None
    min: float = 0.0
    max: float = 0.0
    q: float | int | None = None
    mu: float = 0.0
    sigma: float = 1.0
    a: float = 1.0
    b: float = 1.0

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def dims(self) -> int:
        """Columns in the unit encoding: one per category, none for a constant."""
        if self.distribution == "constant":
            return 0
        return len(self.values) if self.distribution == "categorical" else 1

    # -- sampling -------------------------------------------------------------

    def sample(self, rng: np.random.Generator) -> Any:
        d = self.distribution
        if d == "constant":
            return self.values[0]
        if d == "categorical":
            index = rng.choice(len(self.values), p=self.probabilities) if self.probabilities else \
                rng.integers(len(self.values))
            return self.values[int(index)]
        if d == "int_uniform":
            return int(rng.integers(int(self.min), int(self.max) + 1))
        if d in ("normal", "q_normal"):
            return self._quantize(rng.normal(self.mu, self.sigma))
        if d in ("log_normal", "q_log_normal"):
            return self._quantize(rng.lognormal(self.mu, self.sigma))
        if d in ("beta", "q_beta"):
            return self._quantize(rng.beta(self.a, self.b))
        return self.from_unit(np.array([rng.uniform()]))  # the bounded families are uniform in unit space

    def _quantize(self, x: float) -> float | int:
        if self.q is None:
            return float(x)
        value = round(x / self.q) * self.q
        return int(value) if isinstance(self.q, int) else float(value)

    # -- grid -----------------------------------------------------------------

    def grid_values(self) -> list[Any]:
        """The values a grid search visits, in order, repeats counted once (as W&B's grid_search.py)."""
        d = self.distribution
        if d == "constant":
            return list(self.values)
        if d == "categorical":
            return _unique(self.values)
        if d == "int_uniform":
            return list(range(int(self.min), int(self.max) + 1))
        if d == "q_uniform":
            # The engine's own expression: max excluded, floats unless min, max and q are all integers.
            return _unique(np.arange(self.min, self.max, self.q if self.q is not None else 1.0).tolist())
        raise ValueError(f"{self.name}: a grid cannot enumerate the continuous distribution {d!r}")

    @property
    def grid_ready(self) -> bool:
        return self.distribution in ("constant", "categorical", "int_uniform", "q_uniform")

    # -- the [0, 1] map for bayes ----------------------------------------------

    def to_unit(self, value: Any) -> np.ndarray:
        """The parameter's columns in the unit cube (one-hot for categoricals)."""
        d = self.distribution
        if d == "constant":
            return np.zeros(0)
        if d == "categorical":
            out = np.zeros(len(self.values))
            out[_index(self.values, value)] = 1.0
            return out
        if d == "int_uniform":
            span = int(self.max) - int(self.min) + 1
            return np.array([(int(value) - int(self.min) + 0.5) / span])
        if d in ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta"):
            return np.array([float(np.clip(self._cdf(float(value)), 0.0, 1.0))])
        lo, hi = self._unit_bounds()
        return np.array([float(np.clip((self._warp(float(value)) - lo) / (hi - lo), 0.0, 1.0))])

    def from_unit(self, u: np.ndarray) -> Any:
        """The parameter value for unit columns `u` (argmax for categoricals)."""
        d = self.distribution
        if d == "constant":
            return self.values[0]
        if d == "categorical":
            return self.values[int(np.argmax(u))]
        x = float(np.clip(u[0], 0.0, 1.0))
        if d == "int_uniform":
            span = int(self.max) - int(self.min) + 1
            return int(self.min) + min(int(x * span), span - 1)
        if d in ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta"):
            return self._quantize(float(self._ppf(min(max(x, EDGE), 1 - EDGE))))
        lo, hi = self._unit_bounds()
        value = self._unwarp(lo + x * (hi - lo))
        value = min(max(value, self._low()), self._high())  # float error at the ends
        if d.startswith("q_"):
            return self._quantize(value)
        return float(value)

    def snap(self, block: np.ndarray) -> np.ndarray:
        """Move unit rows (n × dims) to the nearest values the parameter can take (vectorised).

        Bayes scores candidates by where they really land: an int_uniform's
        bin centre, a q_* value's rounded point, a category's one-hot corner.
        """
        d = self.distribution
        if d == "categorical":
            return np.eye(len(self.values))[np.argmax(block, axis=1)]
        if d == "int_uniform":
            span = int(self.max) - int(self.min) + 1
            return (np.minimum(np.floor(np.clip(block, 0, 1) * span), span - 1) + 0.5) / span
        if self.q is None or d == "constant":
            return np.clip(block, 0.0, 1.0)
        u = np.clip(block[:, 0], EDGE, 1 - EDGE)
        if d in BOUNDED:
            lo, hi = self._unit_bounds()
            values = np.round(self._unwarp_array(lo + u * (hi - lo)) / self.q) * self.q
            values = np.clip(values, self._low(), self._high())
            warped = values if d == "q_uniform" else np.log(np.maximum(values, 1e-300))
            return np.clip((warped - lo) / (hi - lo), 0.0, 1.0)[:, None]
        values = np.round(self._ppf(u) / self.q) * self.q
        return np.clip(self._cdf(values), 0.0, 1.0)[:, None]

    def _unwarp_array(self, x: np.ndarray) -> np.ndarray:
        return x if self.distribution in ("uniform", "q_uniform") else np.exp(x)

    def _warp(self, value: float) -> float:
        if self.distribution in ("uniform", "q_uniform"):
            return value
        return math.log(max(value, 1e-300))  # the log families are uniform in log(value)

    def _unwarp(self, x: float) -> float:
        return x if self.distribution in ("uniform", "q_uniform") else math.exp(x)

    def _unit_bounds(self) -> tuple[float, float]:
        lo, hi = self._warp(self._low()), self._warp(self._high())
        return (lo, hi) if hi > lo else (lo, lo + 1e-12)

    def _low(self) -> float:
        """The smallest value the parameter takes."""
        d = self.distribution
        if d in ("log_uniform", "q_log_uniform"):
            return math.exp(self.min)
        if d == "inv_log_uniform":
            return math.exp(-self.max)
        return self.min

    def _high(self) -> float:
        d = self.distribution
        if d in ("log_uniform", "q_log_uniform"):
            return math.exp(self.max)
        if d == "inv_log_uniform":
            return math.exp(-self.min)
        return self.max

    def _cdf(self, x):
        """The distribution's CDF (scalars or arrays)."""
        from scipy import stats  # deferred: only bayes needs it

        d = self.distribution
        if d in ("normal", "q_normal"):
            return stats.norm.cdf(x, self.mu, self.sigma)
        if d in ("log_normal", "q_log_normal"):
            return stats.lognorm.cdf(x, s=self.sigma, scale=math.exp(self.mu))
        return stats.beta.cdf(x, self.a, self.b)

    def _ppf(self, u):
        """The inverse CDF (scalars or arrays)."""
        from scipy import stats

        d = self.distribution
        if d in ("normal", "q_normal"):
            return stats.norm.ppf(u, self.mu, self.sigma)
        if d in ("log_normal", "q_log_normal"):
            return stats.lognorm.ppf(u, s=self.sigma, scale=math.exp(self.mu))
        return stats.beta.ppf(u, self.a, self.b)

    def support_low_high(self) -> tuple[float, float]:
        """Bounds of a bounded parameter's values (tests and validation)."""
        return self._low(), self._high()


def _index(values: list[Any], value: Any) -> int:
    for i, candidate in enumerate(values):
        if candidate == value and type(candidate) is type(value):
            return i
    for i, candidate in enumerate(values):
        if candidate == value:
            return i
    raise ValueError(f"{value!r} is not one of {values!r}")


def point_key(value: Any) -> str:
    """A grid value's identity, as W&B's `yaml_hash`: 1 and 1.0 are one point, 1 and True two.

    The engine hashes `yaml.dump(value, sort_keys=True)` after turning a whole
    float into an int (top level only). Sweep values arrive as JSON, and for
    JSON values sorted-key JSON text draws the same lines as that YAML text.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True)


def _unique(values: list[Any]) -> list[Any]:
    """Repeats counted once, where they first appear, holding the last repeat's value.

    That is what the engine's `dict(zip(hashes, values))` lookup over the
    product of hashes gives: [1, "a", 1.0] visits 1.0 first, then "a".
    """
    position: dict[str, int] = {}
    out: list[Any] = []
    for value in values:
        key = point_key(value)
        if key in position:
            out[position[key]] = value
        else:
            position[key] = len(out)
            out.append(value)
    return out
