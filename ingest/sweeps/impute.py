"""The value bayes search gives each trial, with W&B's `metric.impute` and `impute_while_running`.

Read from wandb/sweeps `src/sweeps/bayes_search.py` (`impute`, `_construct_gp_data`)
and `src/sweeps/run.py` (`metric_extremum`):

- a finished trial counts with its best value: the extremum (min when
  minimising) of the metric's history and its summary value; without one it
  gets the `impute` value;
- a failed, crashed or killed trial gets the `impute` value: `worst` (the
  sweep's worst value, below), `best` (its own best value), or `latest` (its
  last logged value);
- a running trial is pending, unless `impute_while_running` names a strategy:
  then it counts with its best value so far, or that strategy's value;
- `worst` is the worst value any ended trial ever logged (each trial's max
  when minimising, the max of those); any strategy with nothing to go on
  gives 0.0, as the engine's `failed_val`.

Example:
    observations = bayes_observations(config, trials, histories={"run1": [0.9, 0.7]})
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .config import SweepConfig
from .search import Observation, flatten
from .state import ENDED, LIVE, Trial, params_of

FAILED_VALUE = 0.0  # the engine's value when a strategy has no number to use


def bayes_observations(config: SweepConfig, trials: Iterable[Trial],
                       histories: dict[str, list[float]]) -> list[Observation]:
    """Every trial as bayes sees it: a value to fit, or pending."""
    trials = list(trials)
    goal = config.goal
    values = {t.run_id: _finite([*histories.get(t.run_id, []), t.objective]) for t in trials}
    worst = _worst(goal, [values[t.run_id] for t in trials if t.state in ENDED])
    out = []
    for trial in trials:
        params = flatten(params_of(trial), config.params)
        own = values[trial.run_id]
        history = _finite(histories.get(trial.run_id, []))
        if trial.state == "finished":
            value = _best(goal, own) if own else _impute(config.impute, goal, own, history, worst)
        elif trial.state == LIVE:
            if config.impute_while_running == "false":
                out.append(Observation(params, None, pending=True))
                continue
            value = _best(goal, own) if own else _impute(config.impute_while_running, goal, own, history, worst)
        else:  # failed, crashed, killed
            value = _impute(config.impute, goal, own, history, worst)
        out.append(Observation(params, value))
    return out


def _impute(strategy: str, goal: str, own: list[float], history: list[float], worst: float) -> float:
    if strategy == "best":
        return _best(goal, own) if own else FAILED_VALUE
    if strategy == "latest":
        return history[-1] if history else FAILED_VALUE
    return worst


def _worst(goal: str, ended: list[list[float]]) -> float:
    """The worst value any ended trial logged, or 0.0 when none logged one."""
    own_worst = [min(v) if goal == "maximize" else max(v) for v in ended if v]
    if not own_worst:
        return FAILED_VALUE
    return min(own_worst) if goal == "maximize" else max(own_worst)


def _best(goal: str, values: list[float]) -> float:
    return max(values) if goal == "maximize" else min(values)


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
