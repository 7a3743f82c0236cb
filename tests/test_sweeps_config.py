"""Sweep configs as W&B writes them: validation, grid semantics, distributions, macros, hyperband, bayes."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ingest.sweeps.bayes import initial_trials, suggest
from ingest.sweeps.config import SweepConfigError, parse_sweep
from ingest.sweeps.hyperband import bands, hyperband_stops
from ingest.sweeps.search import Observation, flatten, grid_point, key, nest, next_params
from pulse.sweep_cli import load_sweep_file
from pulse.sweep_command import build_command

FIXTURES = Path(__file__).parent / "fixtures"


def sweep(parameters: dict, method: str = "random", **extra) -> dict:
    return {"program": "train.py", "method": method, "metric": {"name": "loss"}, "parameters": parameters, **extra}


def problems(raw: dict) -> str:
    with pytest.raises(SweepConfigError) as caught:
        parse_sweep(raw)
    return str(caught.value)


def grid(raw: dict) -> list[dict]:
    config = parse_sweep(raw)
    return [grid_point(config.params, i) for i in range(config.grid_size)]


# -- validation ----------------------------------------------------------------------


def test_the_seeds_sweep_yaml_parses_and_expands_to_sixteen_trials():
    raw = load_sweep_file(FIXTURES / "sweep.yaml")
    points = grid(raw)
    assert len(points) == 16
    assert len({key(p) for p in points}) == 16
    assert {p["lr"] for p in points} == {0.1, 0.01, 0.001, 0.0001}
    assert {p["batch_size"] for p in points} == {16, 32, 64, 128}


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("program: t.py\nmethod: random\nparameters:\n  lr: {min: 1e-5, max: 1e-1}\n")
    config = parse_sweep(load_sweep_file(path))
    assert (config.params[0].distribution, config.params[0].min, config.params[0].max) == ("uniform", 1e-5, 0.1)


def test_unknown_keys_are_named_with_a_suggestion():
    text = problems({"program": "t.py", "method": "grid", "paramters": {}, "metric": {"name": "a", "gaol": "x"}})
    assert "unknown top-level key 'paramters' (did you mean 'parameters'?)" in text
    assert "unknown metric key 'gaol' (did you mean 'goal'?)" in text
    assert "parameters is missing" in text


def test_every_problem_is_reported_at_once():
    text = problems(sweep({
        "a": {"distribution": "log_unifrom", "min": 1, "max": 2},
        "b": {"min": 5, "max": 1},
        "c": {"distribution": "log_uniform_values", "min": 0, "max": 1},
        "d": {"values": [1, 2], "probabilities": [0.5]},
        "e": {"distribution": "normal", "sigma": -1},
        "f": {"distribution": "uniform", "min": 0, "max": 1, "q": 2},
        "g": {"nothing": 1},
    }, run_cap=0, command=["${env}", "${interpeter}"], early_terminate={"type": "hyperband"}))
    for expected in ("unknown distribution 'log_unifrom' (did you mean 'log_uniform'?)",
                     "parameters.b: min 5 is above max 1",
                     "log_uniform_values takes the values themselves, so min must be above 0",
                     "probabilities must be 2 non-negative numbers",
                     "sigma must be above 0",
                     "'q' does not apply to distribution uniform",
                     "parameters.g needs value, values, min and max, or a distribution",
                     "run_cap must be a positive integer",
                     "unknown macro ${interpeter}",
                     "early_terminate needs min_iter, or max_iter and s"):
        assert expected in text, expected


def test_grid_over_a_continuous_range_is_refused_with_the_way_out():
    text = problems(sweep({"lr": {"min": 0.0001, "max": 0.1}}, method="grid"))
    assert "grid search cannot enumerate a continuous range (uniform)" in text
    assert "method random or bayes" in text


def test_bayes_and_hyperband_need_a_metric():
    raw = {"program": "t.py", "method": "bayes", "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    assert "method bayes needs metric.name" in problems(raw)


def test_min_and_max_choose_int_uniform_or_uniform_by_type():
    config = parse_sweep(sweep({"n": {"min": 1, "max": 4}, "x": {"min": 1, "max": 4.0}}))
    assert [p.distribution for p in config.params] == ["int_uniform", "uniform"]


# -- grid semantics ------------------------------------------------------------------


def test_grid_expands_int_uniform_inclusively_q_uniform_without_max_and_drops_duplicates():
    points = grid(sweep({"n": {"min": 1, "max": 3},
                         "q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25},
                         "v": {"values": [1, 1, 2, True]},
                         "c": {"value": "fixed"}}, method="grid"))
    assert sorted({p["n"] for p in points}) == [1, 2, 3]
    assert sorted({p["q"] for p in points}) == [0, 0.25, 0.5, 0.75]
    assert {json.dumps(p["v"]) for p in points} == {"1", "2", "true"}
    assert len(points) == 3 * 4 * 3 and len({key(p) for p in points}) == len(points)
    assert all(p["c"] == "fixed" for p in points)


def test_nested_parameters_reach_the_program_nested():
    config = parse_sweep(sweep({"optimizer": {"parameters": {"name": {"values": ["adam", "sgd"]},
                                                             "lr": {"values": [0.1, 0.01]}}},
                                "epochs": {"value": 3}}, method="grid"))
    assert config.grid_size == 4
    nested = nest(grid_point(config.params, 3), config.params)
    assert nested == {"optimizer": {"name": "sgd", "lr": 0.01}, "epochs": 3}
    assert flatten(nested, config.params) == {"optimizer.name": "sgd", "optimizer.lr": 0.01, "epochs": 3}


# -- distributions --------------------------------------------------------------------

N = 4000


def samples(spec: dict, seed: int = 7) -> np.ndarray | list:
    config = parse_sweep(sweep({"p": spec}))
    rng = np.random.default_rng(seed)
    return [config.params[0].sample(rng) for _ in range(N)]


@pytest.mark.parametrize("spec, transform, reference", [
    ({"min": -2.0, "max": 3.0}, lambda x: x, stats.uniform(-2, 5)),
    ({"distribution": "log_uniform", "min": -9.0, "max": -2.0}, np.log, stats.uniform(-9, 7)),
    ({"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1}, np.log,
     stats.uniform(math.log(1e-4), math.log(0.1) - math.log(1e-4))),
    ({"distribution": "inv_log_uniform", "min": 1.0, "max": 4.0}, lambda x: -np.log(x), stats.uniform(1, 3)),
    ({"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1.0}, np.log,
     stats.uniform(math.log(0.01), -math.log(0.01))),
    ({"distribution": "normal", "mu": 2.0, "sigma": 0.5}, lambda x: x, stats.norm(2, 0.5)),
    ({"distribution": "log_normal", "mu": 0.3, "sigma": 0.8}, lambda x: x, stats.lognorm(s=0.8, scale=math.exp(0.3))),
    ({"distribution": "beta", "a": 2.0, "b": 5.0}, lambda x: x, stats.beta(2, 5)),
])
def test_continuous_samples_follow_their_distribution(spec, transform, reference):
    values = np.array(samples(spec), dtype=float)
    if "min" in spec and spec.get("distribution", "uniform") == "uniform":
        assert values.min() >= spec["min"] and values.max() <= spec["max"]
    result = stats.kstest(transform(values), reference.cdf)
    assert result.pvalue > 0.001, result


def test_log_uniform_takes_exponents_while_log_uniform_values_takes_values():
    exponents = np.array(samples({"distribution": "log_uniform", "min": math.log(1e-4), "max": math.log(0.1)}))
    values = np.array(samples({"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1}))
    for drawn in (exponents, values):
        assert drawn.min() >= 1e-4 * (1 - 1e-9) and drawn.max() <= 0.1 * (1 + 1e-9)
        assert stats.ks_2samp(np.log(exponents), np.log(values)).pvalue > 0.001
    # The classic mistake: values given to log_uniform are read as exponents, e^0.0001 .. e^0.1.
    mistaken = np.array(samples({"distribution": "log_uniform", "min": 0.0001, "max": 0.1}))
    assert mistaken.min() >= math.exp(0.0001) - 1e-12 and mistaken.max() <= math.exp(0.1) + 1e-12


def test_discrete_samples_follow_their_probabilities():
    drawn = samples({"min": 3, "max": 7})
    assert set(drawn) == {3, 4, 5, 6, 7} and all(isinstance(v, int) for v in drawn)
    assert stats.chisquare([drawn.count(v) for v in range(3, 8)]).pvalue > 0.001
    drawn = samples({"values": ["a", "b", "c"], "probabilities": [0.6, 0.3, 0.1]})
    observed = [drawn.count(v) for v in "abc"]
    assert stats.chisquare(observed, [0.6 * N, 0.3 * N, 0.1 * N]).pvalue > 0.001


@pytest.mark.parametrize("spec, low, high", [
    ({"distribution": "q_uniform", "min": 0, "max": 10, "q": 2}, 0, 10),
    ({"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 5}, 0, 1000),
    ({"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 0.5}, 0.5, math.exp(5) + 0.5),
    ({"distribution": "q_normal", "mu": 0, "sigma": 10, "q": 3}, -math.inf, math.inf),
    ({"distribution": "q_log_normal", "mu": 1, "sigma": 1, "q": 0.25}, 0, math.inf),
    ({"distribution": "q_beta", "a": 2, "b": 2, "q": 0.1}, 0, 1),
])
def test_quantized_samples_are_multiples_of_q_within_range(spec, low, high):
    values = np.array(samples(spec), dtype=float)
    q = spec["q"]
    assert np.allclose(np.round(values / q) * q, values)
    assert values.min() >= low and values.max() <= high
    if isinstance(q, int):
        assert all(isinstance(v, int) for v in samples(spec)[:50])


def test_every_distribution_survives_the_bayes_unit_round_trip():
    config = parse_sweep(sweep({
        "u": {"min": -1.0, "max": 1.0}, "i": {"min": 2, "max": 9}, "c": {"values": ["x", "y", "z"]},
        "lu": {"distribution": "log_uniform", "min": -5, "max": 0},
        "luv": {"distribution": "log_uniform_values", "min": 0.001, "max": 1},
        "qu": {"distribution": "q_uniform", "min": 0, "max": 8, "q": 2},
        "n": {"distribution": "normal"}, "b": {"distribution": "beta", "a": 2, "b": 3},
        "ilu": {"distribution": "inv_log_uniform", "min": 0, "max": 3}}))
    rng = np.random.default_rng(1)
    for _ in range(50):
        for p in config.params:
            value = p.sample(rng)
            unit = p.to_unit(value)
            assert np.all((unit >= 0) & (unit <= 1)), (p.name, value, unit)
            again = p.from_unit(unit)
            if isinstance(value, str):
                assert again == value
            else:
                assert again == pytest.approx(value, rel=1e-6, abs=1e-9), (p.name, value, again)


# -- command macros --------------------------------------------------------------------


def test_command_macros_expand_as_in_wandb(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_ROOT", "/data")
    params = {"lr": 0.1, "deep": True, "wide": False, "opt": {"name": "adam"}}
    argv = build_command(["${env}", "${interpreter}", "${program}", "${args}", "--root=${envvar:DATA_ROOT}",
                          "${args_no_hyphens}", "${args_no_boolean_flags}", "${args_json}", "${args_json_file}"],
                         "train.py", params, tmp_path / "p.json")
    assert argv[:3] == ["/usr/bin/env", "python", "train.py"]  # W&B's literal python: the user's environment
    assert argv[3:7] == ["--lr=0.1", "--deep=True", "--wide=False", "--opt={'name': 'adam'}"]
    assert argv[7] == "--root=/data"
    assert argv[8:12] == ["lr=0.1", "deep=True", "wide=False", "opt={'name': 'adam'}"]
    assert argv[12:15] == ["--lr=0.1", "--deep", "--opt={'name': 'adam'}"]
    assert json.loads(argv[15]) == params
    assert json.loads(Path(argv[16]).read_text()) == params
    assert build_command(None, "t.py", {"a": 1}, tmp_path / "x.json")[1:] == ["python", "t.py", "--a=1"]
    assert build_command(None, "t.py", {}, tmp_path / "x.json", interpreter=sys.executable)[1] == sys.executable


# -- hyperband ---------------------------------------------------------------------------


def band_config(**spec):
    return parse_sweep(sweep({"x": {"values": [1]}}, early_terminate={"type": "hyperband", **spec})).early_terminate


def test_bands_come_from_min_iter_or_from_max_iter_and_s():
    assert bands(band_config(min_iter=3))[:4] == [3, 9, 27, 81]
    assert bands(band_config(max_iter=81, s=3)) == [3, 9, 27]
    assert bands(band_config(max_iter=5, eta=2, s=2)) == [1, 2]


def test_hyperband_judges_band_b_on_the_bth_value_as_soon_as_a_run_has_it():
    # W&B's README example (bands 1 and 2): band 2 is judged on the 2nd value, so only b is stopped.
    histories = {"a": [10, 9], "b": [10, 10], "c": [10, 8, 8], "d": [10, 7, 7], "e": [10, 6, 6]}
    stops = hyperband_stops(band_config(max_iter=5, eta=2, s=2), "minimize", histories, {"b", "c", "d"}, "loss")
    assert set(stops) == {"b"}
    assert "band 2" in stops["b"] and "threshold 8" in stops["b"]


def test_strict_hyperband_judges_the_value_at_the_band_not_the_best_so_far():
    histories = {"x": [5, 5], "y": [6, 5], "z": [7, 3, 7]}  # band 1: threshold 6
    lenient = hyperband_stops(band_config(max_iter=2, eta=2, s=1, strict=False), "minimize", histories, {"z"})
    strict = hyperband_stops(band_config(max_iter=2, eta=2, s=1), "minimize", histories, {"z"})
    assert lenient == {} and set(strict) == {"z"}  # strict is the default, as in W&B's engine


def test_hyperband_maximize_keeps_the_high_runs_and_ignores_nan():
    histories = {"a": [1, 2, 3], "b": [1, float("nan"), 0.5, 0.4], "c": [2, 3, 4]}
    stops = hyperband_stops(band_config(min_iter=1, eta=2), "maximize", histories, {"a", "b", "c"})
    assert set(stops) == {"b"}


# -- bayes ---------------------------------------------------------------------------------


def test_bayes_treats_running_trials_as_pending_and_suggests_elsewhere():
    config = parse_sweep(sweep({"x": {"min": 0.0, "max": 1.0}, "y": {"min": 0.0, "max": 1.0},
                                "c": {"values": ["a", "b"]}}, method="bayes"))
    rng = np.random.default_rng(3)
    seen = []
    for _ in range(initial_trials(config.params) + 3):
        params, _ = next_params(config, seen, set(), rng)
        seen.append(Observation(params, (params["x"] - 0.3) ** 2 + params["y"] + (params["c"] == "b")))
    first = suggest(config.params, seen, "minimize", np.random.default_rng(5))
    again = suggest(config.params, seen, "minimize", np.random.default_rng(5))
    second = suggest(config.params, [*seen, Observation(first, pending=True)], "minimize", np.random.default_rng(5))
    assert first == again  # same data, same seed: the pending trial is what changes the answer
    assert second != first
    distance = math.hypot(first["x"] - second["x"], first["y"] - second["y"])
    assert distance > 0.01 or first["c"] != second["c"]


def test_bayes_never_repeats_a_configuration_while_any_is_left():
    config = parse_sweep(sweep({"n": {"min": 0, "max": 2}, "c": {"values": ["a", "b"]}}, method="bayes"))
    rng = np.random.default_rng(11)
    seen: list[Observation] = []
    for i in range(6):
        params, _ = next_params(config, seen, set(), rng)
        seen.append(Observation(params, float(params["n"]), pending=i % 2 == 1))
    assert len({key(o.params) for o in seen}) == 6
