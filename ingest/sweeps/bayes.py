"""Bayes search: a Gaussian process over the unit cube, expected improvement, constant liar.

Every parameter is mapped to [0, 1] (`Param.to_unit`: linear, log, or through
the prior's CDF; categoricals one-hot), a GP is fitted to the finished trials,
and the next trial is the candidate with the highest expected improvement.
Trials still running are added to the GP with a pessimistic "lie" (the worst
value seen so far), so the GP believes nothing is to be gained near them and
two agents asking at once get different suggestions (constant liar, Ginsbourger
et al. 2010). Until a few trials have finished, suggestions are random.

Why scikit-learn: its GaussianProcessRegressor is exact GP inference on a
Cholesky factor with jitter handled, and fits an ARD Matern kernel plus a
noise term by maximising the marginal likelihood with restarts, all tested
by a large, long-lived project; scipy (which it brings) supplies the normal
CDF/PDF for expected improvement and L-BFGS-B to polish the best candidates.
Those are exactly the parts where hand-rolled linear algebra goes wrong
(ill-conditioned kernels, bad hyperparameters).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .search import Observation, key, random_params
from .space import Param

RESAMPLES = 200  # initial random trials: tries to find a configuration no trial has had yet
GLOBAL_CANDIDATES = 2000
LOCAL_CANDIDATES = 300  # around each of the best few trials
POLISHED = 1


def initial_trials(params: list[Param]) -> int:
    """Random trials before the GP takes over: enough to fit a lengthscale per dimension, roughly."""
    dims = sum(p.dims for p in params)
    return min(10, max(4, dims + 1))


def suggest(params: list[Param], observations: list[Observation], goal: str,
            rng: np.random.Generator) -> dict[str, Any]:
    """The flat parameters of the next trial."""
    searched = [p for p in params if p.dims]
    done = [o for o in observations if not o.pending and _has(o, searched)]
    scored = [o for o in done if o.value is not None and math.isfinite(o.value)]
    if len(scored) < initial_trials(params) or not searched:
        return _unseen_random(params, observations, rng)
    sign = -1.0 if goal == "maximize" else 1.0
    worst = max(sign * o.value for o in scored)
    # The controller gives ended trials their metric.impute value (impute.py); one still without a
    # value counts as the worst seen, as W&B's default `impute: worst` does.
    finished = [(o, sign * o.value if o.value is not None and math.isfinite(o.value) else worst) for o in done]
    pending = [o for o in observations if o.pending and _has(o, searched)]
    x = np.array([encode(searched, o.params) for o, _ in finished] + [encode(searched, o.params) for o in pending])
    y = np.array([v for _, v in finished] + [worst] * len(pending))
    gp = _fit(_transform(y), x, rng)
    # The incumbent is the GP's mean at the best finished trial, not its observed value: a noisy
    # metric's lowest observation is often luck, and improving on luck sends the search back to it.
    best = float(gp.predict(x[: len(finished)]).min())
    taken = {key({p.name: o.params[p.name] for p in searched}) for o in observations}
    candidates = _candidates(searched, x[: len(finished)][np.argsort(y[: len(finished)])[:5]], rng)
    scores = _expected_improvement(gp, candidates, best)
    order = np.argsort(-scores)
    polished = [_polish(gp, searched, candidates[i], best) for i in order[:POLISHED]]
    pool = polished + [candidates[i] for i in order]
    choice = next((c for c in pool if key(decode(searched, c)) not in taken), pool[0])
    flat = decode(searched, choice)
    return {p.name: flat[p.name] if p.dims else p.values[0] for p in params}


def _unseen_random(params: list[Param], observations: list[Observation], rng: np.random.Generator) -> dict[str, Any]:
    """A random draw, redrawn while it repeats an earlier trial: a repeat teaches the GP nothing new."""
    seen = {key(o.params) for o in observations}
    draw: dict[str, Any] = {}
    for _ in range(RESAMPLES):
        draw = random_params(params, rng)
        if key(draw) not in seen:
            break
    return draw


def encode(params: list[Param], flat: dict[str, Any]) -> np.ndarray:
    return np.concatenate([p.to_unit(flat[p.name]) for p in params])


def decode(params: list[Param], row: np.ndarray) -> dict[str, Any]:
    out, at = {}, 0
    for p in params:
        out[p.name] = p.from_unit(row[at:at + p.dims])
        at += p.dims
    return out


def _has(observation: Observation, params: list[Param]) -> bool:
    """Whether a trial has every searched parameter, with values the space still contains."""
    try:
        encode(params, observation.params)
    except (KeyError, ValueError, TypeError):
        return False
    return True


def _transform(y: np.ndarray) -> np.ndarray:
    """Tame heavy tails (a few awful trials must not flatten the GP): a signed log past the median."""
    centred = y - np.median(y)
    scale = np.median(np.abs(centred)) or 1.0
    z = centred / scale
    return np.sign(z) * np.log1p(np.abs(z))


def _fit(y: np.ndarray, x: np.ndarray, rng: np.random.Generator):
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    dims = x.shape[1]
    kernel = (ConstantKernel(1.0, (1e-3, 1e3)) * Matern(np.full(dims, 0.3), (1e-2, 2e1), nu=2.5)
              + WhiteKernel(1e-3, (1e-6, 1e-1)))
    gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                  random_state=int(rng.integers(2**31)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hyperparameters at a bound are fine here
        gp.fit(x, y)
    return gp


def _expected_improvement(gp, x: np.ndarray, best: float) -> np.ndarray:
    from scipy.special import ndtr

    mean, std = gp.predict(x, return_std=True)
    std = np.maximum(std, 1e-9)
    gain = best - mean - 0.01
    z = gain / std
    return gain * ndtr(z) + std * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _candidates(params: list[Param], best_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dims = sum(p.dims for p in params)
    rows = [rng.uniform(size=(GLOBAL_CANDIDATES, dims))]
    for row in best_rows:
        for scale in (0.02, 0.08, 0.2):
            rows.append(row + rng.normal(0, scale, size=(LOCAL_CANDIDATES // 3, dims)))
    return _snap(params, np.clip(np.vstack(rows), 0.0, 1.0))


def _snap(params: list[Param], rows: np.ndarray) -> np.ndarray:
    out, at = np.empty_like(rows), 0
    for p in params:
        out[:, at:at + p.dims] = p.snap(rows[:, at:at + p.dims])
        at += p.dims
    return out


def _polish(gp, params: list[Param], start: np.ndarray, best: float) -> np.ndarray:
    """Climb expected improvement from `start` along the continuous columns (the others stay put)."""
    from scipy.optimize import minimize

    free, at = [], 0
    for p in params:
        if p.distribution in ("uniform", "log_uniform", "log_uniform_values", "inv_log_uniform",
                              "inv_log_uniform_values", "normal", "log_normal", "beta"):
            free.append(at)
        at += p.dims
    if not free:
        return start

    def loss(values: np.ndarray) -> float:
        row = start.copy()
        row[free] = values
        return -float(_expected_improvement(gp, row[None, :], best)[0])

    result = minimize(loss, start[free], method="L-BFGS-B", bounds=[(0.0, 1.0)] * len(free),
                      options={"maxiter": 50})
    row = start.copy()
    row[free] = np.clip(result.x, 0.0, 1.0)
    return row if result.fun <= loss(start[free]) else start
