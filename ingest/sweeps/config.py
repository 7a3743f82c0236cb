"""Validate a W&B sweep config (the YAML, parsed) into a `SweepConfig`, naming every problem.

Example:
    config = parse_sweep({"method": "grid", "metric": {"name": "loss"},
                          "parameters": {"lr": {"values": [0.1, 0.01]}}})
    config.grid_size  # 2
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from typing import Any

from .parameters import is_integer, is_number, parse_parameters
from .space import Param

METHODS = ("grid", "random", "bayes")
TOP_KEYS = {"program", "method", "metric", "parameters", "early_terminate", "command", "run_cap", "name",
            "description", "project"}
IGNORED_KEYS = {"entity", "apiVersion", "kind", "controller"}  # W&B bookkeeping with no meaning here
METRIC_KEYS = {"name", "goal", "target", "impute", "impute_while_running"}
HYPERBAND_KEYS = {"type", "min_iter", "max_iter", "s", "eta", "strict"}
DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
MACROS = {"env", "interpreter", "program", "args", "args_no_hyphens", "args_no_boolean_flags", "args_json",
          "args_json_file"}
MACRO = re.compile(r"\$\{([^}]*)\}")


class SweepConfigError(ValueError):
    """The sweep config is invalid; `problems` lists each reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid sweep config:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class Hyperband:
    eta: float = 3.0
    min_iter: int | None = None
    max_iter: int | None = None
    s: int = 0
    strict: bool = False


@dataclass
class SweepConfig:
    method: str
    params: list[Param]
    metric: str = ""
    goal: str = "minimize"
    target: float | None = None
    early_terminate: Hyperband | None = None
    command: list[str] = field(default_factory=lambda: list(DEFAULT_COMMAND))
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
    for key in sorted(set(raw) - TOP_KEYS - IGNORED_KEYS, key=str):
        problems.append(_unknown(key, TOP_KEYS, "top-level key"))
    method = raw.get("method")
    if method not in METHODS:
        problems.append(f"method must be one of {', '.join(METHODS)}, not {method!r}" if method is not None
                        else f"method is missing: one of {', '.join(METHODS)}")
    config = SweepConfig(method=method if method in METHODS else "random", params=[], raw=raw)
    _metric(raw.get("metric"), config, problems)
    if "parameters" not in raw:
        problems.append("parameters is missing")
    else:
        config.params = parse_parameters(raw["parameters"], problems)
    for key in ("program", "name", "description", "project"):
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{key} must be a string, not {type(raw[key]).__name__}")
        elif key in raw:
            setattr(config, key, raw[key])
    _run_cap(raw.get("run_cap"), config, problems)
    _command(raw.get("command"), config, problems)
    if raw.get("early_terminate") is not None:
        config.early_terminate = _hyperband(raw["early_terminate"], problems)
    if (method == "bayes" or config.early_terminate) and not config.metric:
        problems.append(f"{'method bayes' if method == 'bayes' else 'early_terminate'} needs metric.name "
                        "(the value to optimise)")
    if method == "grid":
        for p in config.params:
            if not p.grid_ready:
                problems.append(f"parameters.{p.name}: grid search cannot enumerate a continuous range "
                                f"({p.distribution}); give `values`, use int_uniform or q_uniform, or use "
                                "method random or bayes")
    if problems:
        raise SweepConfigError(problems)
    return config


def _unknown(key: Any, known: set[str], what: str) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
    return f"unknown {what} {key!r}{hint}"


def _metric(metric: Any, config: SweepConfig, problems: list[str]) -> None:
    if metric is None:
        return
    if not isinstance(metric, dict):
        problems.append("metric must be a mapping with name and goal")
        return
    for key in sorted(set(metric) - METRIC_KEYS, key=str):
        problems.append(_unknown(key, METRIC_KEYS, "metric key"))
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


def _run_cap(value: Any, config: SweepConfig, problems: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        problems.append(f"run_cap must be a positive integer, not {value!r}")
    else:
        config.run_cap = value


def _command(command: Any, config: SweepConfig, problems: list[str]) -> None:
    if command is None:
        command = DEFAULT_COMMAND
    elif not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        problems.append("command must be a non-empty list of strings")
        return
    for item in command:
        for macro in MACRO.findall(item):
            if macro not in MACROS and not (macro.startswith("envvar:") and len(macro) > len("envvar:")):
                problems.append(f"command: unknown macro ${{{macro}}} (known: "
                                + ", ".join(f"${{{m}}}" for m in sorted(MACROS)) + ", ${envvar:NAME})")
    if any("${program}" in item for item in command) and not config.program:
        problems.append("program is missing (the command runs ${program})")
    config.command = list(command)


def _hyperband(spec: Any, problems: list[str]) -> Hyperband | None:
    if not isinstance(spec, dict):
        problems.append("early_terminate must be a mapping with type: hyperband")
        return None
    for key in sorted(set(spec) - HYPERBAND_KEYS, key=str):
        problems.append(_unknown(key, HYPERBAND_KEYS, "early_terminate key"))
    if spec.get("type") != "hyperband":
        problems.append(f"early_terminate.type must be hyperband, not {spec.get('type')!r}")
    band = Hyperband(strict=bool(spec.get("strict", False)))
    eta = spec.get("eta", 3)
    if not is_number(eta) or eta <= 1:
        problems.append(f"early_terminate.eta must be a number above 1, not {eta!r}")
    else:
        band.eta = float(eta)
    if "min_iter" in spec:
        if not is_integer(spec["min_iter"]) or spec["min_iter"] < 1:
            problems.append(f"early_terminate.min_iter must be an integer of at least 1, not {spec['min_iter']!r}")
        else:
            band.min_iter = spec["min_iter"]
    elif "max_iter" in spec:
        s = spec.get("s")
        if not is_integer(spec["max_iter"]) or spec["max_iter"] < 1:
            problems.append(f"early_terminate.max_iter must be a positive integer, not {spec['max_iter']!r}")
        elif not is_integer(s) or s < 1:
            problems.append(f"early_terminate with max_iter needs s, a positive integer (got {s!r})")
        else:
            band.max_iter, band.s = spec["max_iter"], s
    else:
        problems.append("early_terminate needs min_iter, or max_iter and s")
    return band
