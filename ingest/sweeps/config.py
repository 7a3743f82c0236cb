"""Validate a W&B sweep config (the YAML, parsed) into a `SweepConfig`, naming every problem.

What is accepted and refused follows W&B's sweep engine (wandb/sweeps
`src/sweeps/config/schema.json` and `schema.py`, `cfg.py`): its keys and
types, its defaults (`metric.goal: minimize`, `metric.impute: worst`,
`early_terminate.strict: true`, `eta: 3`), JSON Schema's `integer` (so
`run_cap: 5.0` is 5), and its rules the schema cannot say (min below max,
probabilities summing to 1, grid only over enumerable parameters, bayes
needing a parameter that varies). Where the engine would accept a config and
then fail or produce NaN (`sigma: 0`, a hyperband without bands), Pulse
refuses it up front.

A sweep may have no `program`: trials are then run by a Python function
(`emitter.agent(sweep_id, function=train)`).

Example:
    config = parse_sweep({"method": "grid", "metric": {"name": "loss"},
                          "parameters": {"lr": {"values": [0.1, 0.01]}}})
    config.grid_size  # 2
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .command import command_items, macro_problems
from .hyperband import Hyperband, parse_hyperband, whole
from .parameters import is_number, parse_parameters, unknown
from .space import Param

METHODS = ("grid", "random", "bayes")
STRING_KEYS = ("program", "name", "description", "project", "entity", "apiVersion", "job", "image_uri")
TOP_KEYS = {*STRING_KEYS, "method", "metric", "parameters", "early_terminate", "command", "run_cap", "controller",
            "kind"}
# W&B keys for its custom schedulers, which Pulse does not run.
UNSUPPORTED_KEYS = {"scheduler": "custom schedulers (scheduler) are not supported by Pulse",
                    "metrics": "multi-objective sweeps (metrics) need a custom scheduler, which Pulse does not run"}
METRIC_KEYS = {"name", "goal", "target", "impute", "impute_while_running"}
IMPUTE = ("worst", "best", "latest")
CONTROLLERS = ("cloud", "local")  # both mean the ingest's controller here: the decisions are the same


class SweepConfigError(ValueError):
    """The sweep config is invalid; `problems` lists each reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid sweep config:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class SweepConfig:
    method: str
    params: list[Param]
    metric: str = ""
    goal: str = "minimize"
    target: float | None = None
    impute: str = "worst"  # the objective bayes gives a failed, crashed or killed trial
    impute_while_running: str = "false"  # "false": a running trial is pending; else its imputed value counts
    early_terminate: Hyperband | None = None
    command: list[str] = field(default_factory=lambda: command_items(None))
    program: str = ""
    run_cap: int = 0
    name: str = ""
    description: str = ""
    project: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def grid_size(self) -> int:
        return math.prod(len(p.grid_values()) for p in self.params) if self.method == "grid" else 0


def parse_sweep(raw: Any) -> SweepConfig:
    """Check `raw` against W&B's sweep schema; raise SweepConfigError listing every problem."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise SweepConfigError([f"the config must be a mapping, not {type(raw).__name__}"])
    for key in sorted(set(raw) - TOP_KEYS, key=str):
        problems.append(UNSUPPORTED_KEYS.get(key) or unknown(key, TOP_KEYS, "top-level key"))
    method = raw.get("method")
    if method == "custom":
        problems.append("method custom runs a custom scheduler, which Pulse does not; use grid, random or bayes")
    elif method not in METHODS:
        problems.append(f"method must be one of {', '.join(METHODS)}, not {method!r}" if method is not None
                        else f"method is missing: one of {', '.join(METHODS)}")
    config = SweepConfig(method=method if method in METHODS else "random", params=[], raw=raw)
    for key in STRING_KEYS:
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{key} must be a string, not {type(raw[key]).__name__}")
        elif key in raw and hasattr(config, key):
            setattr(config, key, raw[key])
    if "kind" in raw and raw["kind"] != "sweep":
        problems.append(f"kind must be sweep, not {raw['kind']!r}")
    _controller(raw.get("controller"), problems)
    _metric(raw.get("metric"), config, problems)
    if "parameters" not in raw:
        problems.append("parameters is missing")
    else:
        config.params = parse_parameters(raw["parameters"], problems)
    _run_cap(raw.get("run_cap"), config, problems)
    _command(raw.get("command"), config, problems)
    if raw.get("early_terminate") is not None:
        config.early_terminate = parse_hyperband(raw["early_terminate"], problems)
    _method_rules(method, config, problems)
    if problems:
        raise SweepConfigError(problems)
    return config


def _controller(controller: Any, problems: list[str]) -> None:
    if controller is None:
        return
    if not isinstance(controller, dict) or controller.get("type") not in CONTROLLERS:
        kind = controller.get("type") if isinstance(controller, dict) else controller
        problems.append(f"controller must be {{type: cloud}} or {{type: local}}, not {kind!r}")


def _metric(metric: Any, config: SweepConfig, problems: list[str]) -> None:
    if metric is None:
        return
    if not isinstance(metric, dict):
        problems.append("metric must be a mapping with name and goal")
        return
    for key in sorted(set(metric) - METRIC_KEYS, key=str):
        problems.append(unknown(key, METRIC_KEYS, "metric key"))
    name = metric.get("name")
    if not isinstance(name, str) or not name:
        problems.append("metric.name must be a non-empty string")
    else:
        config.metric = name
    goal = metric.get("goal", "minimize")
    if goal not in ("minimize", "maximize"):
        problems.append(f"metric.goal must be minimize or maximize, not {goal!r}")
    else:
        config.goal = goal
    if "target" in metric:
        if not is_number(metric["target"]):
            problems.append(f"metric.target must be a number, not {metric['target']!r}")
        else:
            config.target = float(metric["target"])
    impute = metric.get("impute", "worst")
    if impute not in IMPUTE:
        problems.append(f"metric.impute must be one of {', '.join(IMPUTE)}, not {impute!r}")
    else:
        config.impute = impute
    # The schema wants the string "false"; a YAML `false` (a boolean) means the same and is taken too.
    running = metric.get("impute_while_running", "false")
    running = "false" if running is False else running
    if running not in (*IMPUTE, "false"):
        problems.append(f"metric.impute_while_running must be one of {', '.join(IMPUTE)} or \"false\", "
                        f"not {running!r}")
    else:
        config.impute_while_running = running


def _run_cap(value: Any, config: SweepConfig, problems: list[str]) -> None:
    if value is None:
        return
    cap = whole(value)
    if cap is None or cap <= 0:
        problems.append(f"run_cap must be a positive integer, not {value!r}")
    else:
        config.run_cap = cap


def _command(command: Any, config: SweepConfig, problems: list[str]) -> None:
    if command is not None and not isinstance(command, list):
        problems.append(f"command must be a list, not {type(command).__name__}")
        return
    config.command = command_items(command)
    problems.extend(macro_problems(config.command))


def _method_rules(method: Any, config: SweepConfig, problems: list[str]) -> None:
    if (method == "bayes" or config.early_terminate) and not config.metric:
        problems.append(f"{'method bayes' if method == 'bayes' else 'early_terminate'} needs metric.name "
                        "(the value to optimise)")
    if method == "bayes" and config.params and all(p.distribution == "constant" for p in config.params):
        problems.append("method bayes needs at least one parameter that varies (every parameter is a constant)")
    if method == "grid":
        for p in config.params:
            if p.probabilities is not None:
                problems.append(f"parameters.{p.name}: grid search visits every value, so probabilities do not "
                                "apply; drop them, or use method random")
            elif not p.grid_ready:
                problems.append(f"parameters.{p.name}: grid search cannot enumerate a continuous range "
                                f"({p.distribution}); give `values`, use int_uniform or q_uniform, or use "
                                "method random or bayes")
