"""Validate a sweep's `parameters` section, in every form W&B accepts, into leaf `Param`s.

Forms: `value`; `values` (with `probabilities`: categorical_w_probabilities);
`min`/`max` (integers give int_uniform, floats uniform); a `distribution` with
its own keys (`q`, `mu`, `sigma`, `a`, `b`); and nested `parameters`, whose
leaves are named by path ("optimizer.lr").

As W&B's engine (wandb/sweeps `src/sweeps/params.py`, `HyperParameterSet.from_config`),
parameters come out sorted by name, nested ones in place of their parent, and
that order is the grid's order and the order of a trial's arguments.
The schema's rules (`src/sweeps/config/schema.json`, `schema.py`): `min` must
be below `max`; `categorical` takes no probabilities and
`categorical_w_probabilities` needs them; probabilities sum to 1 as
`numpy.isclose` sees it; `q` defaults to 1.0, a float, so q_* values are floats
unless `q` is an integer.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

import numpy as np

from .space import BOUNDED, Param

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_ALLOWED = {  # keys each distribution accepts besides `distribution`
    "constant": {"value"}, "categorical": {"values"}, "categorical_w_probabilities": {"values", "probabilities"},
    "int_uniform": {"min", "max"},
    "normal": {"mu", "sigma"}, "log_normal": {"mu", "sigma"}, "q_normal": {"mu", "sigma", "q"},
    "q_log_normal": {"mu", "sigma", "q"}, "beta": {"a", "b"}, "q_beta": {"a", "b", "q"},
    **{d: {"min", "max", "q"} if d.startswith("q_") else {"min", "max"} for d in BOUNDED if d != "int_uniform"},
}


def parse_parameters(spec: Any, problems: list[str], prefix: tuple[str, ...] = ()) -> list[Param]:
    """The leaf parameters of `spec`; each problem found is appended to `problems`."""
    where = "parameters" + "".join(f".{p}" for p in prefix)
    if not isinstance(spec, dict) or not spec:
        problems.append(f"{where} must be a non-empty mapping of parameter names")
        return []
    params: list[Param] = []
    for name, body in sorted(spec.items(), key=lambda item: str(item[0])):
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}: parameter name {name!r} must start with a letter or _ and hold only "
                            "letters, digits, _ . -")
            continue
        path = (*prefix, name)
        if isinstance(body, dict) and "parameters" in body:
            if set(body) != {"parameters"}:
                problems.append(f"{where}.{name}: nested parameters take no other keys than `parameters`")
            params.extend(parse_parameters(body["parameters"], problems, path))
            continue
        param = _parameter(path, body, f"{where}.{name}", problems)
        if param is not None:
            params.append(param)
    return params


def _parameter(path: tuple[str, ...], body: Any, where: str, problems: list[str]) -> Param | None:
    if not isinstance(body, dict):
        problems.append(f"{where} must be a mapping such as {{values: [...]}} or {{min: 0, max: 1}}")
        return None
    dist = body.get("distribution")
    if dist is None:
        if "value" in body:
            dist = "constant"
        elif "values" in body:
            dist = "categorical_w_probabilities" if "probabilities" in body else "categorical"
        elif "min" in body and "max" in body:
            dist = "int_uniform" if is_integer(body["min"]) and is_integer(body["max"]) else "uniform"
        else:
            problems.append(f"{where} needs value, values, min and max, or a distribution")
            return None
    if dist not in _ALLOWED:
        close = difflib.get_close_matches(str(dist), sorted(_ALLOWED), n=1)
        problems.append(f"{where}: unknown distribution {dist!r}"
                        + (f" (did you mean {close[0]!r}?)" if close else ""))
        return None
    before = len(problems)
    for key in sorted(set(body) - _ALLOWED[dist] - {"distribution"}, key=str):
        if dist == "categorical" and key == "probabilities":
            problems.append(f"{where}: distribution categorical takes no probabilities (use "
                            "categorical_w_probabilities, or leave distribution out)")
        else:
            problems.append(f"{where}: {key!r} does not apply to distribution {dist} "
                            f"(it takes {', '.join(sorted(_ALLOWED[dist]))})")
    param = Param(path, "categorical" if dist == "categorical_w_probabilities" else dist)
    if dist == "constant":
        if "value" not in body:
            problems.append(f"{where}: a constant needs value")
        param.values = [body.get("value")]
    elif dist.startswith("categorical"):
        _categorical(body, param, where, problems, weighted=dist == "categorical_w_probabilities")
    else:
        _numeric(body, param, where, problems)
    return param if len(problems) == before else None


def _categorical(body: dict, param: Param, where: str, problems: list[str], weighted: bool) -> None:
    values = body.get("values")
    if not isinstance(values, list) or not values:
        problems.append(f"{where}: values must be a non-empty list")
        return
    param.values = values
    if not weighted:
        return
    probabilities = body.get("probabilities")
    if probabilities is None:
        problems.append(f"{where}: categorical_w_probabilities needs probabilities, one per value")
    elif (not isinstance(probabilities, list) or len(probabilities) != len(values)
            or not all(is_number(p) and p >= 0 for p in probabilities)):
        problems.append(f"{where}: probabilities must be {len(values)} non-negative numbers, one per value")
    elif not np.isclose(sum(probabilities), 1.0):  # the engine's test, so 0.333, 0.333, 0.334 passes
        problems.append(f"{where}: probabilities must add up to 1, not {sum(probabilities):g}")
    else:
        # Normalised: numpy's sampler allows far less slack than isclose does.
        total = float(sum(probabilities))
        param.probabilities = [float(p) / total for p in probabilities]


def _numeric(body: dict, param: Param, where: str, problems: list[str]) -> None:
    dist = param.distribution
    for key in _ALLOWED[dist]:
        if key in body and not is_number(body[key]):
            problems.append(f"{where}: {key} must be a number, not {body[key]!r}")
            return
    if dist in BOUNDED:
        if "min" not in body or "max" not in body:
            problems.append(f"{where}: distribution {dist} needs min and max")
            return
        param.min, param.max = body["min"], body["max"]
        if dist == "int_uniform" and not (is_integer(param.min) and is_integer(param.max)):
            problems.append(f"{where}: int_uniform needs integer min and max, not {param.min!r} and {param.max!r}")
        if param.min > param.max:
            problems.append(f"{where}: min {param.min!r} is above max {param.max!r}")
        elif param.min == param.max:
            problems.append(f"{where}: min and max are both {param.min!r}; min must be below max "
                            f"(for a fixed value write value: {param.min!r})")
        if dist.endswith("_values") and param.min <= 0:
            problems.append(f"{where}: {dist} takes the values themselves, so min must be above 0 "
                            f"(for natural-log exponents use {dist.removesuffix('_values')})")
    param.mu = float(body.get("mu", 0.0))
    param.sigma = float(body.get("sigma", 1.0))
    param.a, param.b = float(body.get("a", 1.0)), float(body.get("b", 1.0))
    # W&B's schema allows sigma, a and b of 0, and its engine then draws NaN: refused here.
    if param.sigma <= 0:
        problems.append(f"{where}: sigma must be above 0")
    if param.a <= 0 or param.b <= 0:
        problems.append(f"{where}: beta's a and b must be above 0")
    if dist.startswith("q_"):
        param.q = body.get("q", 1.0)
        if param.q <= 0:
            problems.append(f"{where}: q must be above 0")


def unknown(key: Any, known: set[str], what: str) -> str:
    """The problem line for an unknown key, with the closest known one as a hint."""
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
    return f"unknown {what} {key!r}{hint}"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
