"""The dashboard's pure pieces: smoothing and NaN marks, histogram re-binning, the model graph's DOT,
parameter importance, gradient-health flags, the runs table and the sweep helpers."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dashboard.graph import GraphFormatError, describe, parse, to_dot
from dashboard.health import gradient_flags, other_alerts
from dashboard.heatmap import rebin
from dashboard.importance import forest_importance, importance, rank_correlation
from dashboard.lines import ema, nonfinite_summary, prepare
from dashboard.runs_table import format_duration, important_keys, runs_frame, summary_number
from dashboard.sweep import (
    flatten,
    is_log,
    metric_names,
    objective_value,
    planned_trials,
    sweep_parameters,
    trials,
    varying,
)
from pulse.graph_schema import Edge, Model, Module, Shape


def points(values: list[float], **extra) -> pd.DataFrame:
    n = len(values)
    frame = pd.DataFrame({"step": range(n), "ts": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
                          "min": values, "max": values, "last": values, "points": 1,
                          "nan": 0, "posinf": 0, "neginf": 0})
    for column, value in extra.items():
        frame[column] = value
    return frame


def test_ema_is_debiased_and_keeps_gaps() -> None:
    values = pd.Series([10.0, 10.0, np.nan, 0.0])
    smoothed = ema(values, 0.5)
    assert smoothed[0] == 10.0 and smoothed[1] == 10.0  # not pulled towards zero at the start
    assert math.isnan(smoothed[2]) and 0 < smoothed[3] < 10
    assert list(ema(values, 0.0).fillna(-1)) == [10.0, 10.0, -1, 0.0]
    with pytest.raises(ValueError):
        ema(values, 1.0)


def test_prepare_marks_nonfinite_buckets_and_drops_what_a_log_axis_cannot_place() -> None:
    frame = points([1.0, -2.0, 3.0], nan=[0, 2, 0], posinf=[0, 0, 1])
    prepared, title = prepare(frame, pd.Series(["run"] * 3), "step", log_y=True)
    assert title == "step" and list(prepared["nonfinite"]) == [0, 2, 1]
    assert math.isnan(prepared["last"][1])  # -2 has no place on a log axis
    assert nonfinite_summary(prepared) == "run: 2 NaN, 1 +Inf"


def test_prepare_x_axes_wall_and_relative_time() -> None:
    frame = points([1.0] * 301)
    start = pd.Series([pd.Timestamp("2026-01-01", tz="UTC")] * 301)
    relative, title = prepare(frame, pd.Series(["r"] * 301), "relative", starts=start)
    assert title == "time since start (min)" and relative["x"].iloc[-1] == pytest.approx(5.0)
    wall, title = prepare(frame, pd.Series(["r"] * 301), "wall")
    assert title == "wall time (UTC)" and str(wall["x"].iloc[0]) == "2026-01-01 00:00:00"


def test_rebin_keeps_every_count_and_clips_one_exploding_step() -> None:
    steps = list(range(0, 100, 10))
    edges = [list(np.linspace(-1, 1, 9)) for _ in steps]
    edges[5] = list(np.linspace(-1000, 1000, 9))  # one step far wider than the rest
    rows = pd.DataFrame({"step": steps, "edges": edges, "counts": [[1, 2, 3, 4, 4, 3, 2, 1]] * 10,
                         "nonfinite": [0] * 9 + [3]})
    cells = rebin(rows, bins=16)
    assert cells.groupby("step")["count"].sum().round(6).eq(20).all()
    assert cells["low"].min() >= -1.001 and cells["high"].max() <= 1.001  # the grid kept the usual range
    assert set(cells.loc[cells["nonfinite"] > 0, "step"]) == {90}
    assert rebin(rows.iloc[:0]).empty


def test_graph_dot_nests_modules_and_escapes_names() -> None:
    model = Model(name="Net", param_count=10, dataflow="torch.fx",
                  modules=[Module(name='enc"oder', type="Seq"),
                           Module(name='enc"oder.fc\\1', type="Linear", parent='enc"oder',
                                  params={"weight": Shape(dims=[2, 3])}, param_count=6)],
                  edges=[Edge(source="input", target='enc"oder.fc\\1'),
                         Edge(source='enc"oder.fc\\1', target="output")])
    dot = to_dot(model)
    assert 'label="enc\\"oder (Seq)"' in dot and "fc\\\\1\\nLinear\\nweight 2×3\\n6 params" in dot
    assert dot.count("->") == 2 and "subgraph cluster_" in dot
    assert describe(model) == "Net · 10 parameters · 2 modules · dataflow from torch.fx"
    del model.edges[:]
    tree = to_dot(model)
    assert "root ->" in tree and "subgraph" not in tree


def test_a_graph_written_by_the_emitter_reads_back_through_the_same_schema() -> None:
    """One contract: the text the emitter's encoder sends is what the dashboard parses (and a v1 row too)."""
    torch = pytest.importorskip("torch")
    from emitter.encode import _event
    from emitter.graph import describe as describe_model
    from emitter.graph import document

    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    text = _event("graph", document([describe_model(net)])).graph.graph_json
    [model] = parse(text).models
    assert [m.name for m in model.modules] == ["", "0", "1", "2"] and model.param_count == 19
    assert [(e.source, e.target) for e in model.edges][0] == ("input", "0")
    assert describe(model) == "Sequential · 19 parameters · 3 modules · dataflow from torch.fx"
    legacy = json.dumps({"format": "pulse.model_graph/1", "models": [
        {"name": "Old", "modules": [{"name": "fc", "type": "Linear", "parent": None, "params": {"weight": [2, 2]}}],
         "edges": [["input", "fc"]]}]})
    assert parse(legacy).models[0].modules[0].params["weight"].dims == [2, 2]
    with pytest.raises(GraphFormatError, match="does not match"):
        parse(json.dumps({"models": [{"modules": "nope"}]}))


def test_importance_finds_the_parameter_that_matters_and_its_direction() -> None:
    rng = np.random.default_rng(0)
    params = pd.DataFrame({"lr": 10 ** rng.uniform(-4, 0, 60), "noise": rng.uniform(0, 1, 60),
                           "opt": rng.choice(["adam", "sgd"], 60)})
    objective = pd.Series(np.log10(params["lr"]) + 0.05 * rng.normal(size=60))
    table = importance(params, objective)
    assert table["parameter"].iloc[0] == "lr" and table["importance"].iloc[0] > 0.7
    assert table["importance"].sum() == pytest.approx(1.0)
    assert table.set_index("parameter").loc["lr", "correlation"] > 0.9
    assert math.isnan(table.set_index("parameter").loc["opt", "correlation"])  # no order among categories


def test_forest_sees_a_sweet_spot_that_rank_correlation_misses() -> None:
    x = np.linspace(-1, 1, 80)
    y = x ** 2  # best in the middle
    noise = np.random.default_rng(1).uniform(-1, 1, 80)
    assert abs(rank_correlation(x, y)) < 0.1
    forest = forest_importance(np.column_stack([x, noise]), y)
    assert forest[0] > 0.8
    assert list(forest_importance(np.zeros((5, 1)), np.ones(5))) == [0.0]


def test_gradient_flags_merge_alerts_summary_and_histograms_once_each() -> None:
    alerts = pd.DataFrame({"title": ["Gradient exploding: fc1.weight", "Accuracy reached"],
                           "level": ["WARN", "INFO"], "text": ["norm 41 at step 300", "yay"]})
    summary = {"gradient_health": {"exploding": {"fc1.weight": 300}, "vanishing": {"fc3.bias": 120}}}
    histograms = pd.DataFrame({"key": ["gradients/fc2.weight", "parameters/fc2.weight"], "nonfinite_total": [5, 9],
                               "first_nonfinite_step": [400, 10]})
    flags = gradient_flags(alerts, summary, histograms)
    assert [(f.kind, f.param, f.step) for f in flags] == [("nonfinite", "fc2.weight", 400),
                                                          ("exploding", "fc1.weight", 300),
                                                          ("vanishing", "fc3.bias", 120)]
    assert flags[1].text == "norm 41 at step 300"
    assert list(other_alerts(alerts)["title"]) == ["Accuracy reached"]


def test_runs_frame_keeps_numbers_numeric_and_formats_durations() -> None:
    page = pd.DataFrame({"state": ["running"], "name": [""], "run_id": ["r1"],
                         "created_at": [pd.Timestamp("2026-01-01", tz="UTC")], "duration_s": [3725.0],
                         "tags": [["a"]], "group": [""], "config_values": [["0.1", '"adam"']],
                         "summary_values": [['{"min": 0.2, "last": 0.3}']], "job_type": ["train"],
                         "sweep_id": [""], "host": ["gpu-1"], "notes": ["first line\nsecond"],
                         "error": ["RuntimeError: boom\nmore"]})
    table = runs_frame(page, ["lr", "opt"], ["loss"], project="p q")
    assert table["name"][0] == "run?project=p+q&run=r1#r1" and table["duration"][0] == "1h 02m"
    assert (table["notes"][0], table["error"][0], table["host"][0]) == ("first line", "RuntimeError: boom", "gpu-1")
    assert table["config.lr"].dtype == "float64" and table["config.opt"][0] == "adam"
    assert table["loss"][0] == 0.2  # a define_metric summary shows its best part
    assert [format_duration(s) for s in (5, 65, 90000, 200000, -1)] == ["5s", "1m 05s", "25h 00m", "2d 07h", ""]
    assert summary_number(True) is None and summary_number({"last": 2}) == 2.0


def test_default_summary_columns_are_the_metrics_users_care_about() -> None:
    keys = pd.DataFrame({"key": ["a_extra", "grad_norm/fc.weight", "probe/001", "train/acc", "train/loss", "val/acc",
                                 "val/loss", "best", "gradient_health", "note"],
                         "runs": [9, 9, 1, 5, 5, 5, 5, 2, 9, 9],
                         "type": ["Double", "Double", "Int64", "Double", "Double", "Double", "Double", "Object",
                                  "Object", "String"]})
    definitions = {"best": {"summary": "max", "goal": "maximize"}, "val/*": {"step_metric": "epoch"}}
    assert important_keys(keys, definitions) == ["best", "val/loss", "train/loss", "val/acc", "train/acc",
                                                 "a_extra", "probe/001"]


def test_sweep_helpers_read_wandb_configs() -> None:
    config = {"metric": {"name": "val/loss", "goal": "minimize"}, "method": "grid",
              "parameters": {"lr": {"values": [0.1, 0.01]}, "opt": {"parameters": {"beta": {"values": [0.9, 0.99]}}},
                             "epochs": {"value": 5}}}
    assert sorted(sweep_parameters(config)) == ["epochs", "lr", "opt.beta"]
    assert planned_trials(config) == 4 and planned_trials({"run_cap": 7}) == 7
    assert planned_trials({"method": "random"}) is None
    assert flatten({"opt": {"beta": 0.9}, "lr": 1}) == {"opt.beta": 0.9, "lr": 1}
    assert varying([{"lr": 1, "seed": 0, "tags": [1]}, {"lr": 2, "seed": 0, "tags": [2]}]) == ["lr"]
    assert objective_value({"min": 0.1, "max": 0.9}, "maximize") == 0.9 and objective_value(math.nan, "") is None
    assert metric_names([{"a": 1, "_step": 3, "b": "x"}, {"a": 2, "c": {"last": 1}}]) == ["a", "c"]
    assert is_log(pd.Series([1e-4, 1e-1])) and not is_log(pd.Series([1, 5]))
    assert is_log(pd.Series([1, 2]), {"distribution": "log_uniform"})
    runs = pd.DataFrame({"run_id": ["a", "b"], "name": ["", "B"], "state": ["finished", "killed"],
                         "created_at": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
                         "config": ['{"lr": 0.1, "opt": {"beta": 0.9}}', '{"lr": 0.01}'],
                         "summary": ['{"val/loss": 0.5}', '{"val/loss": NaN}']})
    table = trials(runs, ["lr", "opt.beta"], "val/loss", "minimize")
    assert list(table["name"]) == ["a", "B"] and table["objective"][0] == 0.5 and table["objective"].isna()[1]
    assert table["opt.beta"].isna()[1]
