"""Which sweep parameters matter for the objective: rank correlation, and a random forest's view.

Rank correlation (Spearman) says whether the objective tends to rise or fall with a parameter —
signed, and blind to a sweet spot in the middle. The forest's importance (the share of the
objective's variance its trees remove by splitting on the parameter, as W&B reports) also sees a
sweet spot and interactions, but not the direction. The two side by side read well.

The forest is small and written here on numpy: the dashboard has no machine-learning library, and
a few dozen regression trees over a few hundred trials need nothing more than sorting and
cumulative sums. Categorical parameters enter as their category's code, which trees split on as
well as on any number.

Example:
    table = importance(trials[["lr", "batch_size"]], trials["objective"])
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TREES = 64
MAX_DEPTH = 6
MIN_LEAF = 2


def importance(params: pd.DataFrame, objective: pd.Series, seed: int = 0) -> pd.DataFrame:
    """One row per parameter: parameter, correlation (Spearman; NaN for categoricals), importance
    (forest, summing to 1), sorted by importance. Rows with a missing objective are left out."""
    keep = objective.notna().to_numpy() & np.isfinite(pd.to_numeric(objective, errors="coerce").to_numpy())
    params, y = params[keep], pd.to_numeric(objective[keep]).to_numpy(dtype=float)
    numeric = {c: pd.api.types.is_numeric_dtype(params[c]) and not pd.api.types.is_bool_dtype(params[c])
               for c in params}
    matrix = np.column_stack([_encode(params[c]) for c in params]) if len(params.columns) else np.empty((len(y), 0))
    correlation = [rank_correlation(matrix[:, i], y) if numeric[c] else np.nan for i, c in enumerate(params)]
    forest = forest_importance(_fill_missing(matrix), y, seed=seed)
    table = pd.DataFrame({"parameter": list(params.columns), "correlation": correlation, "importance": forest})
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (ties get their average rank); NaN when either side is constant or missing."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return float("nan")
    rx, ry = pd.Series(x[ok]).rank().to_numpy(), pd.Series(y[ok]).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def forest_importance(x: np.ndarray, y: np.ndarray, seed: int = 0, trees: int = TREES) -> np.ndarray:
    """Mean decrease in squared error per feature over bootstrapped regression trees, normalised to sum
    to 1 (all zeros when nothing could be split)."""
    n, features = x.shape
    gains = np.zeros(features)
    if n < 2 * MIN_LEAF or features == 0 or np.ptp(y) == 0:
        return gains
    rng = np.random.default_rng(seed)
    tried = max(1, int(np.ceil(features * 0.6)))  # features tried per split: decorrelates the trees
    for _ in range(trees):
        sample = rng.integers(0, n, n)
        _grow(x[sample], y[sample], 0, gains, rng, tried)
    total = gains.sum()
    return gains / total if total > 0 else gains


def _grow(x: np.ndarray, y: np.ndarray, depth: int, gains: np.ndarray, rng: np.random.Generator, tried: int) -> None:
    if depth >= MAX_DEPTH or len(y) < 2 * MIN_LEAF or np.ptp(y) == 0:
        return
    best = None  # (gain, feature, threshold)
    parent = ((y - y.mean()) ** 2).sum()
    for feature in rng.permutation(x.shape[1])[:tried]:
        order = np.argsort(x[:, feature], kind="stable")
        xs, ys = x[order, feature], y[order]
        left_n = np.arange(1, len(ys))
        left_sum, left_sq = np.cumsum(ys)[:-1], np.cumsum(ys ** 2)[:-1]
        right_n = len(ys) - left_n
        right_sum, right_sq = ys.sum() - left_sum, (ys ** 2).sum() - left_sq
        sse = (left_sq - left_sum ** 2 / left_n) + (right_sq - right_sum ** 2 / right_n)
        # a split must fall between two different values and leave MIN_LEAF trials on each side
        valid = (xs[1:] != xs[:-1]) & (left_n >= MIN_LEAF) & (right_n >= MIN_LEAF)
        if not valid.any():
            continue
        i = int(np.argmin(np.where(valid, sse, np.inf)))
        gain = parent - sse[i]
        if best is None or gain > best[0]:
            best = (gain, feature, (xs[i] + xs[i + 1]) / 2)
    if best is None or best[0] <= 0:
        return
    gain, feature, threshold = best
    gains[feature] += gain
    left = x[:, feature] <= threshold
    _grow(x[left], y[left], depth + 1, gains, rng, tried)
    _grow(x[~left], y[~left], depth + 1, gains, rng, tried)


def _fill_missing(matrix: np.ndarray) -> np.ndarray:
    """A trial without the parameter sits below every trial with it, where a tree can split it off."""
    filled = matrix.copy()
    for i in range(matrix.shape[1]):
        missing = np.isnan(matrix[:, i])
        if missing.any():
            present = matrix[~missing, i]
            filled[missing, i] = (present.min() - 1) if present.size else 0.0
    return filled


def _encode(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column):
        return column.astype(float).to_numpy()
    if pd.api.types.is_numeric_dtype(column):
        return pd.to_numeric(column, errors="coerce").astype(float).to_numpy()
    codes = pd.Categorical(column.astype(str)).codes.astype(float)
    return np.where(column.isna().to_numpy(), np.nan, codes)
