"""Pulse decides as W&B's sweep engine and agent decide: their test cases, ported as data.

Inputs and expected decisions come from wandb/sweeps (`tests/test_hyperband_stopping.py`,
`tests/test_grid_search.py`, `tests/test_random_search.py`, `tests/test_validation.py`,
`tests/test_config.py`, `tests/test_schema.py`, `tests/test_bayes_search.py`) and
wandb/wandb (`tests/system_tests/test_sweep/test_wandb_agent.py`); each test names its
source. Expected command lines not in W&B's tests are written from the code that builds
them (`wandb/sdk/launch/sweeps/utils.py`, `create_sweep_command_args`: `f"{param}={value}"`
and `json.dumps`). The test code is Pulse's own.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pytest

from ingest.sweeps.config import SweepConfigError, parse_sweep
from ingest.sweeps.hyperband import bands, hyperband_stops
from ingest.sweeps.impute import bayes_observations
from ingest.sweeps.search import grid_point, nest, next_params
from ingest.sweeps.state import Trial
from pulse.sweep_command import build_command, command_args

FIXTURES = Path(__file__).parent / "fixtures"


def grid_points(parameters: dict) -> list[dict]:
    config = parse_sweep({"method": "grid", "parameters": parameters})
    return [nest(grid_point(config.params, i), config.params) for i in range(config.grid_size)]


def refused(raw: dict) -> str:
    with pytest.raises(SweepConfigError) as caught:
        parse_sweep(raw)
    return str(caught.value)


# -- hyperband: wandb/sweeps tests/test_hyperband_stopping.py --------------------------------------


def stops(early_terminate: dict, runs: dict[str, tuple[str, list[float]]], goal: str = "minimize") -> set[str]:
    """W&B's stop_runs on runs given as {name: (state, history)}."""
    config = parse_sweep({"method": "grid", "metric": {"name": "loss", "goal": goal},
                          "early_terminate": {"type": "hyperband", **early_terminate},
                          "parameters": {"a": {"values": [1, 2, 3]}}})
    histories = {name: values for name, (_, values) in runs.items()}
    running = {name for name, (state, _) in runs.items() if state == "running"}
    return set(hyperband_stops(config.early_terminate, goal, histories, running))


def band_list(**early_terminate) -> list[int]:
    return bands(parse_sweep({"method": "grid", "metric": {"name": "loss"},
                              "early_terminate": {"type": "hyperband", **early_terminate},
                              "parameters": {"a": {"value": 1}}}).early_terminate)


@pytest.mark.parametrize("early_terminate, goal, flat, rising, expected_bands", [
    ({"min_iter": 3, "eta": 3}, "minimize", [10] * 4, [10 - i for i in range(10)], [3, 9, 27]),  # min_iter_bands
    ({"min_iter": 3, "eta": 3}, "maximize", [10] * 4, [10 + i for i in range(10)], [3, 9, 27]),  # ..._bands_max
    ({"max_iter": 81, "eta": 3, "s": 3}, "minimize", [10] * 4, [10 - i for i in range(10)], [3, 9, 27]),
    ({"max_iter": 18, "eta": 3, "s": 2}, "minimize", [10] * 4, [10 - i for i in range(10)], [2, 6]),  # from max_iter
])
def test_engine_band_cases_stop_the_flat_run(early_terminate, goal, flat, rising, expected_bands):
    runs = {"run": ("running", flat), "run2": ("running", rising)}
    assert stops(early_terminate, runs, goal) == {"run"}
    assert band_list(**early_terminate)[:len(expected_bands)] == expected_bands


def test_engine_single_run_and_two_runs_passing_band_one_stop_nothing():
    et = {"max_iter": 18, "eta": 3, "s": 2, "strict": False}
    assert stops(et, {"run": ("running", [10 - i for i in range(10)])}) == set()
    assert stops(et, {"run": ("running", [10, 10, 6]), "run2": ("running", [10 - i for i in range(10)])}) == set()


README_RUNS = {"a": ("finished", [10, 9]), "b": ("running", [10, 10]), "c": ("running", [10, 8, 8]),
               "d": ("running", [10, 7, 7]), "e": ("finished", [10, 6, 6])}


@pytest.mark.parametrize("runs, expected", [
    (README_RUNS, {"b"}),  # test_5runs_band1_stop_2 (the engine's README example)
    ({"a": ("finished", [10]), "b": ("running", [11]), "c": ("running", [10, 8, 8]),
      "d": ("running", [10, 7, 7]), "e": ("finished", [10, 6, 6])}, {"b", "c"}),  # ..._1stnoband
])
def test_engine_five_run_cases(runs, expected):
    assert stops({"max_iter": 5, "eta": 2, "s": 2}, runs) == expected


def test_engine_eta_3_cases_minimize_and_maximize():
    # test_eta_3: bands 1 and 3, thresholds 7 and 4 (lenient)
    runs = {"a": ("finished", [9, 8]), "b": ("running", [11, 11]), "c": ("running", [10, 8, 3]),
            "d": ("running", [10, 7, 4]), "e": ("running", [10, 6, 6])}
    assert stops({"max_iter": 9, "eta": 3, "s": 2, "strict": False}, runs) == {"b", "e"}
    # test_eta_3_max
    runs = {"a": ("finished", [-10, -9]), "b": ("running", [-11, -11]), "c": ("running", [-10, -8, -5, -3]),
            "d": ("running", [-10, -6, -2]), "e": ("running", [-10, -6, -6, -6])}
    assert stops({"max_iter": 9, "eta": 3, "s": 2, "strict": False}, runs, goal="maximize") == {"b", "e"}


def test_engine_nan_metrics_are_dropped_before_counting_iterations():
    # test_hyperband_runs_with_nan_metrics: c has one finite value, so it reaches no band (33, 100).
    # (d and e are shortened here: what matters is that c is not judged.)
    runs = {"c": ("running", [19.68895149230957] + [math.nan] * 56),
            "d": ("finished", [6.2, 6.0, 5.5, 5.1, 4.6, 4.7, 4.6, 4.9, 4.7, 4.4]),
            "e": ("finished", [6.8, 5.5, 4.9, 5.1, 4.7, 4.6, 4.7, 4.2, 4.5, 4.7])}
    assert stops({"s": 2, "eta": 3, "max_iter": 300}, runs) == set()


def hyper_data() -> list[list[float]]:
    return json.loads((FIXTURES / "wandb_hyperband_histories.json").read_text())["runs"]


def test_engine_extensive_relaxed_dataset_stops_15_then_10_then_5():
    data = hyper_data()
    et = {"min_iter": 30, "eta": 1.5, "strict": False}  # bands 30, 45, 67
    stopped: set[str] = set()
    for cut, expected in ((32, 15), (47, 10), (None, 5)):
        runs = {str(i): ("running", r[:cut]) for i, r in enumerate(data) if str(i) not in stopped}
        now = stops(et, runs, goal="maximize")
        assert len(now) == expected, cut
        stopped |= now
    assert len(stopped) == 30


@pytest.mark.parametrize("shuffle", [False, True], ids=["forward", "randomized"])
def test_engine_extensive_strict_dataset_stops_all_but_one_in_eta(shuffle):
    data = hyper_data()
    if shuffle:
        random.Random(5).shuffle(data)
    et = {"min_iter": 30, "eta": 1.5, "strict": True}
    stopped: set[str] = set()
    should = 0
    for band in (30, 45, 67):
        runs = {str(i): ("running", r[:band + 5]) for i, r in enumerate(data) if str(i) not in stopped}
        should += int(len(runs) * (1 - 1 / 1.5))
        stopped |= stops(et, runs, goal="maximize")
    assert abs(len(stopped) - should) <= 1  # the engine's own tolerance for int() rounding


def test_strict_is_true_unless_set_false_and_must_be_a_boolean():
    base = {"method": "grid", "metric": {"name": "loss"}, "parameters": {"a": {"value": 1}}}
    assert parse_sweep({**base, "early_terminate": {"type": "hyperband", "min_iter": 1}}).early_terminate.strict
    off = parse_sweep({**base, "early_terminate": {"type": "hyperband", "min_iter": 1, "strict": False}})
    assert off.early_terminate.strict is False
    text = refused({**base, "early_terminate": {"type": "hyperband", "min_iter": 1, "strict": "yes"}})
    assert "early_terminate.strict must be true or false, not 'yes'" in text
    # test_hyperband_missing_eta_imputed: eta defaults to 3
    assert parse_sweep({**base, "early_terminate": {"type": "hyperband", "min_iter": 3}}).early_terminate.eta == 3


@pytest.mark.parametrize("early_terminate, why", [
    ({"max_iter": 1, "eta": 3, "s": 2}, "make no band"),
    ({"max_iter": 81, "eta": 3, "s": 0}, "make no band"),
    ({"max_iter": -9, "eta": 3, "s": 2}, "make no band"),
    ({"min_iter": 0}, "min_iter must be an integer of at least 1"),
    ({"min_iter": 3, "max_iter": 81}, "with max_iter needs s"),
    ({"max_iter": 81, "s": 1.5}, "with max_iter needs s, a whole number"),
    ({"min_iter": 3, "extra_key": 1234}, "unknown early_terminate key 'extra_key'"),
    ({"min_iter": 3, "eta": 1}, "eta must be a number above 1"),
])
def test_hyperband_settings_that_cannot_work_are_refused(early_terminate, why):
    assert why in refused({"method": "random", "metric": {"name": "loss"}, "parameters": {"a": {"value": 1}},
                           "early_terminate": {"type": "hyperband", **early_terminate}})


def test_hyperband_whole_number_floats_count_and_max_iter_wins_over_min_iter():
    assert band_list(min_iter=3.0, eta=3)[:3] == [3, 9, 27]
    assert band_list(max_iter=81.0, s=3.0, eta=3) == [3, 9, 27]
    assert band_list(max_iter=81, s=3, eta=3, min_iter=2) == [3, 9, 27]  # the engine reads max_iter first


# -- grid: wandb/sweeps tests/test_grid_search.py -----------------------------------------------------


def pairs(parameters: dict) -> list[tuple]:
    return [(p["v1"], p["v2"]) for p in grid_points(parameters)]


def test_engine_grid_cases():
    assert pairs({"v1": {"values": [1, 2, 3]}, "v2": {"values": [4, 5]}}) == [
        (1, 4), (1, 5), (2, 4), (2, 5), (3, 4), (3, 5)]
    assert pairs({"v1": {"values": ["", [9, 5]]}, "v2": {"values": [256, 512]}}) == [
        ("", 256), ("", 512), ([9, 5], 256), ([9, 5], 512)]
    # test_grid_search_anaconda1_order: the repeated "a" is one point, and the order is checked
    assert pairs({"v1": {"values": ["a", "b", "c", "a"]}, "v2": {"values": [1, 2, 3]}}) == [
        ("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3), ("c", 1), ("c", 2), ("c", 3)]
    assert pairs({"v1": {"value": "a"}, "v2": {"value": "b"}}) == [("a", "b")]  # constants only
    points = grid_points({"v1": {"values": ["a", "b", "c'"]}, "v2": {"value": 1}})
    assert all(set(p) == {"v1", "v2"} for p in points)  # the constant reaches every trial


def test_engine_grid_repeats_count_once():
    # test_grid_search_duplicated_values_are_not_duplicated_in_answer ((2, 3) is a list in JSON)
    found = pairs({"v1": {"values": [None, 2, 3, "a", [2, 3], 3]}, "v2": {"values": ["a", "b", "c'"]}})
    assert len(found) == 15
    assert sorted(json.dumps(p) for p in found) == sorted(json.dumps(p) for p in (
        (v1, v2) for v1 in (None, 2, 3, "a", [2, 3]) for v2 in ("a", "b", "c'")))
    # test_grid_search_dict_val_is_propagated: dicts are one point whatever their key order
    found = pairs({"v1": {"values": ["a", "b", "c'"]}, "v2": {"values": [
        {"a": "b"}, {"c": "d", "b": "g"}, {"e": {"f": "g"}}, {"a": "b"}, {"b": "g", "c": "d"}]}})
    assert len(found) == 9
    # test_yaml_hash_float, ..._matches_integer_float_values: 3000000 and 3000000.0 are one point,
    # ..._keeps_bool_and_int_values_distinct: True and 1 are two, ..._matches_nan_values: NaN is one point
    assert [p["v1"] for p in grid_points({"v1": {"values": [3000000, "next", 3000000.0]}, "v2": {"value": 0}})] \
        == [3000000.0, "next"]  # first place, last value: the engine's hash lookup
    assert [p["v1"] for p in grid_points({"v1": {"values": [True, 1]}, "v2": {"value": 0}})] == [True, 1]
    assert len(grid_points({"v1": {"values": [math.nan, 1, math.nan]}, "v2": {"value": 0}})) == 2


def test_engine_grid_int_uniform_and_q_uniform_ranges():
    assert [p["v1"] for p in grid_points({"v1": {"distribution": "int_uniform", "min": -52, "max": 10},
                                          "v2": {"value": "test"}})] == list(range(-52, 11))
    q = [p["v1"] for p in grid_points({"v1": {"distribution": "q_uniform", "min": -9.211, "max": 23.23, "q": 2.341},
                                       "v2": {"value": "test"}})]
    assert q == np.arange(-9.211, 23.23, 2.341).tolist()
    # q defaults to 1.0, a float (schema.json param_quniform), so the values are floats
    values = [p["v1"] for p in grid_points({"v1": {"distribution": "q_uniform", "min": 0, "max": 3},
                                            "v2": {"value": 0}})]
    assert values == [0.0, 1.0, 2.0] and all(isinstance(v, float) for v in values)


def test_grid_orders_parameters_by_sorted_name_nested_within_their_parent():
    # params.py HyperParameterSet.from_config walks sorted(d.items()) at every level, nested in place.
    points = grid_points({"z": {"values": [1, 2]}, "m": {"parameters": {"y": {"values": ["p", "q"]},
                                                                        "x": {"values": [True, False]}}},
                          "a": {"values": ["first", "second"]}})
    order = [(p["a"], p["m"]["x"], p["m"]["y"], p["z"]) for p in points]
    assert order[:3] == [("first", True, "p", 1), ("first", True, "p", 2), ("first", True, "q", 1)]
    assert order[-1] == ("second", False, "q", 2) and len(order) == 16
    assert list(points[0]) == ["a", "m", "z"] and list(points[0]["m"]) == ["x", "y"]


def test_probabilities_on_a_grid_are_refused():
    # tests/test_config.py test_categorical_prob_grid
    text = refused({"method": "grid", "parameters": {"v1": {"values": [1, 2, 3], "probabilities": [0.2, 0.2, 0.6]}}})
    assert "probabilities do not apply" in text


# -- random: wandb/sweeps tests/test_random_search.py -------------------------------------------------


@pytest.mark.parametrize("values, probs", [
    (list(range(5)), [0.2, 0.2, 0.2, 0.2, 0.2]),
    (list(range(3)), [0.5, 0.0, 0.5]),
    (list(range(5)), [0.1, 0.25, 0.15, 0.2, 0.3]),
])
def test_engine_random_categorical_follows_its_probabilities_trial_after_trial(values, probs):
    # Drawn as the controller draws, with every earlier trial known: W&B never redraws a repeat,
    # so the counts follow the stated probabilities (the engine's 3-sigma check).
    config = parse_sweep({"method": "random", "parameters": {"v1": {"values": values, "probabilities": probs}}})
    rng = np.random.default_rng(17)
    seen = []
    from ingest.sweeps.search import Observation

    for _ in range(1000):
        flat, _ = next_params(config, seen, set(), rng)
        seen.append(Observation(flat))
    drawn = [o.params["v1"] for o in seen]
    for value, p in zip(values, probs):
        expected = 1000 * p
        assert abs(drawn.count(value) - expected) <= 3 * math.sqrt(expected), (value, drawn.count(value))


def test_random_keeps_a_draw_that_repeats_an_earlier_trial():
    config = parse_sweep({"method": "random", "parameters": {"a": {"values": ["x", "y"]}, "b": {"value": 1}}})
    rng = np.random.default_rng(3)
    from ingest.sweeps.search import Observation

    seen = []
    for _ in range(6):
        flat, _ = next_params(config, seen, set(), rng)
        seen.append(Observation(flat))
    assert len({o.params["a"] for o in seen}) == 2 and len(seen) == 6  # repeats came, and stayed


# -- validation: wandb/sweeps tests/test_validation.py, test_config.py, test_schema.py ------------------


def params_of(parameters: dict, method: str = "random"):
    return parse_sweep({"method": method, "parameters": parameters}).params


@pytest.mark.parametrize("parameters, distribution", [
    ({"min": 0, "max": 1}, "int_uniform"),  # test_json_type_inference_int_uniform
    ({"min": 0.0, "max": 1.0}, "uniform"),
    ({"min": 0.0, "max": 1}, "uniform"),  # ..._uniform_mixed
    ({"min": 0, "max": 1.0}, "uniform"),
    ({"min": 0, "max": 1, "distribution": "uniform"}, "uniform"),  # test_uniform_with_integer_min_max
    ({"distribution": "normal"}, "normal"),
    ({"distribution": "log_normal"}, "log_normal"),
    ({"values": [1, 2, 3]}, "categorical"),
    ({"value": "abcd"}, "constant"),
])
def test_engine_type_inference(parameters, distribution):
    [param] = params_of({"p": parameters})
    assert param.distribution == distribution


def test_engine_defaults_for_normal_and_beta_families():
    [qn] = params_of({"p": {"distribution": "q_normal", "q": 0.1}})
    assert (qn.mu, qn.sigma, qn.q) == (0, 1, 0.1)
    [qb] = params_of({"p": {"distribution": "q_beta"}})
    assert (qb.a, qb.b, qb.q) == (1, 1, 1.0) and isinstance(qb.q, float)


@pytest.mark.parametrize("raw, why", [
    ({"metric": {"name": "loss", "goal": "minimise"}, "method": "grid", "parameters": {"v1": {"values": ["a"]}}},
     "metric.goal must be minimize or maximize"),  # test_validation_disable
    ({"method": "random", "parameters": {}}, "parameters must be a non-empty mapping"),  # ..._not_enough_params
    ({"method": "random"}, "parameters is missing"),  # test_missing_parameters_section
    ({"parameters": {"a": {"values": [1, 2]}}}, "method is missing"),  # ..._no_method_baseline_validation
    ({"method": "random", "parameters": {"a": {"min": 0.0, "max": 1.0, "distribution": "int_uniform"}}},
     "int_uniform needs integer min and max"),  # test_minmax_type_inference
    ({"controller": {"type": "invalid"}, "method": "random", "parameters": {"a": {"values": [1]}}},
     "controller must be {type: cloud} or {type: local}"),  # test_controller
    ({"method": "random", "parameters": {"a": {"max": 0, "min": 1}}}, "min 1 is above max 0"),
    ({"method": "random", "parameters": {"a": {"min": 2, "max": 1, "distribution": "log_uniform_values"}}},
     "min 2 is above max 1"),
    ({"method": "random", "parameters": {"v1": {"mu": 0.1, "sigma": -0.1, "distribution": "normal"}}},
     "sigma must be above 0"),  # test_negative_sigma_validation
    ({"method": "random", "parameters": {"v1": {"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3, 0.4]}}},
     "probabilities must be 3 non-negative numbers"),  # test_wrong_prob_length
    ({"method": "random", "parameters": {"v1": {"values": [1, 2, 3], "probabilities": [0.1, 0.2, 0.3]}}},
     "probabilities must add up to 1"),  # test_irregular_probs
    ({"method": "random", "parameters": {"invalid": {"invalid": "this config is not valid"}}},
     "needs value, values, min and max"),  # test_totally_invalid_config
    ({"method": "random", "parameters": {"a": {"values": []}}}, "values must be a non-empty list"),
    ({"method": "grid", "metric": "{'goal': 'maximize', 'name': 'val/loss'}", "parameters": {"a": {"values": [1]}}},
     "metric must be a mapping"),  # test_invalid_metric
    ({"method": "random", "metric": {"name": "loss", "goal": "minimise"}, "parameters": {"a": {"values": [1]}},
      "early_terminate": {"type": "invalid type"}}, "early_terminate.type must be hyperband"),
])
def test_engine_refusals(raw, why):
    assert why in refused(raw)


@pytest.mark.parametrize("run_cap, ok", [(-1, False), (0, False), (1, True), (300, True), (-0.3, False),
                                         (5.1, False), ("1", False), (5.0, True)])
def test_engine_run_cap_is_a_positive_integer_and_a_whole_float_is_one(run_cap, ok):
    # test_that_run_cap_validation_works_for_min_value, plus JSON Schema's integer taking 5.0
    raw = {"method": "random", "parameters": {"a": {"values": [1, 2, 3, 4]}}, "run_cap": run_cap}
    if ok:
        assert parse_sweep(raw).run_cap == int(run_cap) and isinstance(parse_sweep(raw).run_cap, int)
    else:
        assert "run_cap must be a positive integer" in refused(raw)


def test_engine_accepts_nested_parameter_dicts_and_names_repeated_at_other_levels():
    # test_param_dict
    params = params_of({"a": {"parameters": {"b": {"value": 1}, "c": {"parameters": {"d": {"value": 2}}}}},
                        "b": {"values": [2, 3]}})
    assert [p.name for p in params] == ["a.b", "a.c.d", "b"]
    params_of({"v1": {"values": [None, 2, 3, "a", [2, 3]]}})  # mixed value types are fine


@pytest.mark.parametrize("raw, why", [
    ({"method": "random", "parameters": {"a": {"min": 1, "max": 1}}}, "min and max are both 1"),
    ({"method": "random", "parameters": {"a": {"values": [1, 2], "probabilities": [0.5, 0.5],
                                               "distribution": "categorical"}}},
     "distribution categorical takes no probabilities"),
    ({"method": "random", "parameters": {"a": {"values": [1, 2], "distribution": "categorical_w_probabilities"}}},
     "categorical_w_probabilities needs probabilities"),
    ({"method": "random", "controller": "local", "parameters": {"a": {"values": [1]}}}, "controller must be"),
    ({"method": "bayes", "metric": {"name": "l", "impute": "median"}, "parameters": {"a": {"min": 0.0, "max": 1.0}}},
     "metric.impute must be one of worst, best, latest, not 'median'"),
    ({"method": "bayes", "metric": {"name": "l", "impute_while_running": "yes"},
      "parameters": {"a": {"min": 0.0, "max": 1.0}}}, "metric.impute_while_running must be one of"),
    ({"method": "bayes", "metric": {"name": "l"}, "parameters": {"a": {"value": 1}, "b": {"value": 2}}},
     "method bayes needs at least one parameter that varies"),
    ({"method": "random", "parameters": {"a": {"distribution": "normal", "sigma": 0}}}, "sigma must be above 0"),
    ({"method": "custom", "parameters": {"a": {"value": 1}}}, "method custom runs a custom scheduler"),
    ({"method": "random", "kind": "job", "parameters": {"a": {"value": 1}}}, "kind must be sweep"),
])
def test_what_wandb_refuses_is_refused(raw, why):
    assert why in refused(raw)


def test_what_wandb_accepts_is_accepted():
    config = parse_sweep({"method": "random", "parameters": {"a": {"values": [1, 2, 3]}}})  # no program
    assert config.program == "" and config.command == ["${env}", "${interpreter}", "${program}", "${args}"]
    parse_sweep({"method": "random", "job": "me/proj/job:v1", "parameters": {"a": {"value": 1}}})
    parse_sweep({"method": "random", "image_uri": "ghcr.io/me/train:1", "parameters": {"a": {"value": 1}}})
    parse_sweep({"method": "random", "controller": {"type": "local"}, "entity": "me", "apiVersion": "1",
                 "kind": "sweep", "parameters": {"a": {"value": 1}}})
    [p] = params_of({"a": {"values": ["x", "y", "z"], "probabilities": [0.333333, 0.333333, 0.333333]}})
    assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-12)  # np.isclose's tolerance; normalised
    params_of({"a": {"values": list(range(10)), "probabilities": [0.1] * 10}})
    config = parse_sweep({"method": "bayes", "metric": {"name": "l", "impute": "best",
                                                        "impute_while_running": False},
                          "parameters": {"a": {"min": 0.0, "max": 1.0}}})
    assert (config.impute, config.impute_while_running) == ("best", "false")


def test_log_uniform_exponents_stay_accepted():
    # The engine now refuses log_uniform, q_log_uniform and inv_log_uniform (check_for_deprecated_distributions);
    # W&B's docs still list them and Pulse's contract names log_uniform, so Pulse keeps them (exponents).
    [p] = params_of({"a": {"min": 1, "max": 2, "distribution": "log_uniform"}})
    assert p.support_low_high() == pytest.approx((math.e, math.e**2))


# -- bayes impute: wandb/sweeps tests/test_bayes_search.py ------------------------------------------------


def trial(run_id: str, state: str, a: float, objective: float | None = None) -> Trial:
    return Trial("p", "s", run_id, 1, -1, json.dumps({"a": a}), state=state, objective=objective)


def bayes_values(metric: dict, trials: list[Trial], histories: dict) -> list:
    config = parse_sweep({"method": "bayes", "metric": {"name": "loss", **metric},
                          "parameters": {"a": {"min": 0.0, "max": 1.0}}})
    return [(o.value, o.pending) for o in bayes_observations(config, trials, histories)]


def test_engine_impute_latest_takes_the_last_finite_logged_value_not_the_summary():
    # test_construct_gp_data_imputes_failed_run_with_latest_history_metric
    trials = [trial("f", "failed", 0.25, objective=0.5), trial("ok", "finished", 0.75)]
    assert bayes_values({"impute": "latest"}, trials, {"f": [5.0, 1.0, math.nan, 3.0], "ok": [4.0]}) == [
        (3.0, False), (4.0, False)]


def test_engine_impute_best_and_the_failed_value():
    # test_bayes_impute_best: failed runs count with their best value; with worst, all with the sweep's worst
    histories = {"a": [10, 8, 10], "b": [10, 6, 10], "c": [10, 4, 4, 10], "d": [10, 2, 2, 10], "e": [10, 1, 1, 10]}
    trials = [trial(name, "failed", 0.2) for name in histories]
    assert [v for v, _ in bayes_values({"impute": "best"}, trials, histories)] == [8, 6, 4, 2, 1]
    assert [v for v, _ in bayes_values({}, trials, histories)] == [10] * 5
    # test_construct_gp_data_imputes_missing_finished_metric_with_failed_value
    assert bayes_values({"impute": "best"}, [trial("x", "finished", 0.4)], {}) == [(0.0, False)]


def test_engine_finished_trials_count_with_their_best_value_and_running_ones_wait():
    trials = [trial("done", "finished", 0.1, objective=0.9), trial("live", "running", 0.5)]
    histories = {"done": [0.95, 0.7, 0.9], "live": [0.6]}
    assert bayes_values({}, trials, histories) == [(0.7, False), (None, True)]
    # test_bayes_impute_while_running_best_includes_running_run
    assert bayes_values({"impute_while_running": "best"}, trials, histories) == [(0.7, False), (0.6, False)]
    assert bayes_values({"goal": "maximize"}, trials, histories)[0] == (0.95, False)


# -- the command line: wandb/wandb tests/system_tests/test_sweep/test_wandb_agent.py, sweeps/utils.py -------


def test_wandb_agent_command_args_for_bools_and_none():
    # test_agent_create_command_args, verbatim
    args = command_args({"a": True, "b": False, "c": 1, "d": None})
    assert args["args"] == ["--a=True", "--b=False", "--c=1", "--d=None"]
    assert args["args_no_hyphens"] == ["a=True", "b=False", "c=1", "d=None"]
    assert args["args_no_boolean_flags"] == ["--a", "--c=1", "--d=None"]
    assert args["args_json"] == ['{"a": true, "b": false, "c": 1, "d": null}']
    assert args["args_append_hydra"] == ["+a=True", "+b=False", "+c=1", "+d=None"]
    assert args["args_override_hydra"] == ["++a=True", "++b=False", "++c=1", "++d=None"]


def test_wandb_agent_writes_lists_dicts_unicode_and_spaces_with_python_str():
    params = {"names": ["a", "b c"], "opt": {"lr": 0.01, "name": "adam"}, "msg": "héllo wörld", "x": 1e-05}
    args = command_args(params)
    assert args["args"] == ["--names=['a', 'b c']", "--opt={'lr': 0.01, 'name': 'adam'}", "--msg=héllo wörld",
                            "--x=1e-05"]
    assert args["args_no_equals"] == ["--names", "['a', 'b c']", "--opt", "{'lr': 0.01, 'name': 'adam'}",
                                      "--msg", "héllo wörld", "--x", "1e-05"]
    assert args["args_override_hydra"][0] == "++names=['a', 'b c']"
    assert args["args_json"] == ['{"names": ["a", "b c"], "opt": {"lr": 0.01, "name": "adam"}, '
                                 '"msg": "h\\u00e9llo w\\u00f6rld", "x": 1e-05}']  # json.dumps: ASCII escapes


def test_wandb_agent_envvar_macros_anywhere_and_unset_ones_stay_their_name(tmp_path, monkeypatch):
    # test_agent_create_sweep_command, plus an unset variable
    for name, value in (("FOO_DIR", "foo_dir"), ("FOO_DIR_TWO", "foo_dir_two"), ("FOO_VAR", "foo_var")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    argv = build_command(["${env}", "${interpreter}", "--output_dir",
                          "fake/path/${envvar:FOO_DIR}/${envvar:FOO_DIR}/${envvar:FOO_DIR_TWO}", "--foovar",
                          "${envvar:FOO_VAR}", "${envvar:NOT_SET_ANYWHERE}"], "t.py", {}, tmp_path / "a.json")
    assert argv == ["/usr/bin/env", "python", "--output_dir", "fake/path/foo_dir/foo_dir/foo_dir_two", "--foovar",
                    "foo_var", "NOT_SET_ANYWHERE"]


def test_wandb_agent_items_to_text_empty_command_and_literal_macros_inside_items(tmp_path):
    params = {"lr": 0.1}
    assert build_command([], "train.py", params, tmp_path / "a.json") == [
        "/usr/bin/env", "python", "train.py", "--lr=0.1"]  # command: [] is the default command
    assert build_command(["python3", "-m", "x", 10, 1.5, True, None, "${args}"], "", params,
                         tmp_path / "a.json") == ["python3", "-m", "x", "10", "1.5", "True", "None", "--lr=0.1"]
    assert build_command(["run", "--cfg=${args_json}", "${program}.py", "${args_no_equals}"], "train", params,
                         tmp_path / "a.json") == ["run", "--cfg=${args_json}", "${program}.py", "--lr", "0.1"]
    assert not (tmp_path / "a.json").exists()  # written only for a whole-item ${args_json_file}


def test_trial_arguments_follow_the_sorted_parameter_order(tmp_path):
    config = parse_sweep({"method": "grid", "parameters": {"zeta": {"value": 1}, "alpha": {"values": [[1, 2]]},
                                                           "mid": {"parameters": {"y": {"value": "s p"},
                                                                                  "x": {"value": None}}}}})
    params = nest(grid_point(config.params, 0), config.params)
    assert build_command(["${args}"], "", params, tmp_path / "a.json") == [
        "--alpha=[1, 2]", "--mid={'x': None, 'y': 's p'}", "--zeta=1"]


def test_unknown_whole_item_macros_are_refused_but_literal_ones_inside_items_pass():
    raw = {"method": "random", "parameters": {"a": {"value": 1}}}
    assert "unknown macro ${interpeter}" in refused({**raw, "command": ["${interpeter}"]})
    assert "upper-case letters" in refused({**raw, "command": ["${envvar:lower}"]})
    parse_sweep({**raw, "command": ["python", "train.py", "model.lr=${optim.lr}", "${envvar:HOME}", 3]})
