"""watch(): histograms and norms computed on the device, the model graph, gradient health, alerts."""

from __future__ import annotations

import json
import math
import uuid

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import emitter
from emitter.tensor_stats import BINS, HEAD, counts_by_sorting, flatten, group_stats, small_limit, tensor_stats
from pulse.graph_schema import decode as decode_graph


def project() -> str:
    return f"tel-{uuid.uuid4().hex[:8]}"


class Net(nn.Module):
    """Nested modules and a functional op between them, as real models have."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def test_watch_logs_histograms_and_norms_every_log_freq_backwards_equal_to_torch_and_unwatch_stops(emitter_env):
    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    run = emitter.init(project=project())
    emitter.watch(model, log="all", log_freq=5, log_graph=True)
    expected = {}
    for step in range(30):
        if step == 20:
            emitter.unwatch(model)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(torch.randn(16, 1, 8, 8)), torch.randint(0, 3, (16,)))
        loss.backward()
        if step < 20 and (step + 1) % 5 == 0:  # the 5th, 10th, ... backward pass
            for name, p in model.named_parameters():
                for kind, t in (("gradients", p.grad), ("parameters", p.detach())):
                    expected[(f"{kind}/{name}", step)] = (torch.histc(t, BINS), t.norm().item(), t.clone())
        optimizer.step()
        emitter.log({"loss": loss.item()})
    emitter.finish()

    rows = emitter_env.query("SELECT key, step, count, sum, min, max, nonfinite, bucket_edges, bucket_counts "
                             "FROM histograms FINAL WHERE run_id = {r:String}", r=run.id)
    assert {(r["key"], r["step"]) for r in rows} == set(expected)
    for r in rows:
        counts, _, tensor = expected[(r["key"], r["step"])]
        assert r["bucket_counts"] == [int(c) for c in counts.tolist()], r["key"]
        assert (r["count"], r["nonfinite"]) == (tensor.numel(), 0)
        assert (r["min"], r["max"]) == (tensor.min().item(), tensor.max().item())
        assert r["bucket_edges"][0] == r["min"] and r["bucket_edges"][-1] == r["max"]
        assert r["sum"] == pytest.approx(tensor.sum().item(), rel=1e-5, abs=1e-6)
    norms = emitter_env.query("SELECT key, step, value FROM metrics FINAL WHERE run_id = {r:String} "
                              "AND (key LIKE 'grad_norm/%' OR key LIKE 'param_norm/%')", r=run.id)
    assert len(norms) == len(expected)
    for r in norms:
        kind, name = r["key"].split("/", 1)
        _, norm, _ = expected[("gradients" if kind == "grad_norm" else "parameters") + "/" + name, r["step"]]
        assert r["value"] == norm
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())

    [graph_row] = emitter_env.query("SELECT graph FROM model_graphs WHERE run_id = {r:String}", r=run.id)
    [graph] = decode_graph(graph_row["graph"]).models  # the contract the dashboard reads it by
    modules = {m.name: m for m in graph.modules}
    assert set(modules) == {name for name, _ in model.named_modules()}
    assert modules["head"].type == "Linear"
    assert {p: list(s.dims) for p, s in modules["head"].params.items()} == {"weight": [3, 144], "bias": [3]}
    assert modules["features.0"].param_count == 4 * 9 + 4 and modules["features"].parent == ""
    assert graph.dataflow == "torch.fx"
    assert [(e.source, e.target) for e in graph.edges] == [("input", "features.0"), ("features.0", "features.1"),
                                                           ("features.1", "head"), ("head", "output")]


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it, so the graph comes from a real forward."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x)
        if h.sum() > -1e9:
            h = self.b(torch.relu(h)) + h
        return self.c(h)


def test_model_graph_of_an_untraceable_model_comes_from_the_first_forward_pass(emitter_env):
    model = Branchy()
    run = emitter.init(project=project())
    emitter.watch(model, log=None, log_graph=True)
    for _ in range(3):
        model(torch.randn(2, 4)).sum().backward()
        emitter.log({"x": 1})
    emitter.finish()
    [row] = emitter_env.query("SELECT graph FROM model_graphs WHERE run_id = {r:String}", r=run.id)
    [graph] = decode_graph(row["graph"]).models
    assert graph.dataflow == "forward hooks"
    assert sorted((e.source, e.target) for e in graph.edges) == [("a", "b"), ("a", "c"), ("b", "c"), ("c", "output"),
                                                                 ("input", "a")]
    assert not model._forward_hooks and not model.a._forward_hooks  # the tracer removed itself
    assert emitter_env.scalar("SELECT count() FROM histograms WHERE run_id = {r:String}", r=run.id) == 0


class Four(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c, self.d = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d(torch.relu(self.c(torch.relu(self.b(torch.relu(self.a(x)))))))


@pytest.mark.parametrize("health, flagged", [
    (None, {("nonfinite", "a.weight", 12, "ERROR"), ("exploding", "b.weight", 10, "WARN"),
            ("exploding", "b.bias", 10, "WARN"), ("vanishing", "c.weight", 2, "WARN"),
            ("vanishing", "c.bias", 2, "WARN")}),
    ({"explode_factor": 1e7, "vanish_patience": 100}, {("nonfinite", "a.weight", 12, "ERROR")}),
    (False, set()),
])
def test_nan_exploding_and_vanishing_gradients_are_each_flagged_once_with_the_parameter_name(
        emitter_env, health, flagged):
    torch.manual_seed(1)
    model = Four()
    current = {"step": 0}

    def nan_from_step_12(g):
        if current["step"] < 12:
            return g
        g = g.clone()
        g[0, 0] = float("nan")
        return g

    model.a.weight.register_hook(nan_from_step_12)
    for p in model.b.parameters():
        p.register_hook(lambda g: g * 1e6 if current["step"] >= 10 else g)
    for p in model.c.parameters():
        p.register_hook(lambda g: g * 1e-12)

    run = emitter.init(project=project())
    emitter.watch(model, log_freq=1, health=health)
    for step in range(25):
        current["step"] = step
        model.zero_grad()
        model(torch.randn(32, 8)).sub(torch.randn(32, 1)).pow(2).mean().backward()
        emitter.log({"step": step})
    emitter.finish()
    in_process = run.summary.get("gradient_health")  # the sender checks health: complete after finish()

    alerts = emitter_env.query("SELECT level, title, text FROM alerts WHERE run_id = {r:String}", r=run.id)
    assert sorted((a["title"], a["level"]) for a in alerts) == sorted(
        (f"Gradient {kind}: {param}", level) for kind, param, _, level in flagged)
    expected_summary = {kind: {param: step for k, param, step, _ in flagged if k == kind}
                        for kind in ("nonfinite", "exploding", "vanishing")}
    stored = json.loads(emitter_env.run_row(run.project, run.id)["summary"]).get("gradient_health")
    if health is False:
        assert in_process is None and stored is None
    else:
        assert in_process == stored == expected_summary
    nonfinite = emitter_env.query("SELECT step, nonfinite FROM histograms FINAL WHERE run_id = {r:String} "
                                  "AND key = 'gradients/a.weight' ORDER BY step", r=run.id)
    assert [(r["step"], r["nonfinite"]) for r in nonfinite] == [(s, int(s >= 12)) for s in range(25)]


def test_alerts_are_stored_with_their_level_and_a_bad_level_is_refused(emitter_env):
    run = emitter.init(project=project())
    for level in ("INFO", "WARN", "ERROR"):
        emitter.alert(f"title {level}", f"text {level}", level=level)
    with pytest.raises(ValueError, match="level must be INFO, WARN or ERROR"):
        emitter.alert("t", "x", level="LOUD")
    emitter.finish()
    rows = emitter_env.query("SELECT level, title, text FROM alerts WHERE run_id = {r:String} ORDER BY level",
                             r=run.id)
    assert [(r["level"], r["title"], r["text"]) for r in rows] == [
        (level, f"title {level}", f"text {level}") for level in ("ERROR", "INFO", "WARN")]


def test_watch_refuses_what_it_cannot_watch():
    emitter.init(mode="disabled")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        emitter.watch("model")
    with pytest.raises(ValueError, match="log must be one of"):
        emitter.watch(nn.Linear(2, 2), log="weights")
    with pytest.raises(ValueError, match="unknown health thresholds"):
        emitter.watch(nn.Linear(2, 2), health={"explode": 3})
    emitter.finish()


# -- the on-device statistics against torch ----------------------------------------

def unpack(stats: torch.Tensor) -> tuple[list[float], list[int]]:
    values = stats.tolist()
    return values[:HEAD], [int(c) for c in values[HEAD:]]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from([math.nan, math.inf, -math.inf])),
                min_size=1, max_size=300))
def test_device_statistics_bin_finite_values_exactly_as_torch_histc(values):
    x = torch.tensor(values, dtype=torch.float32)
    finite = x[torch.isfinite(x)]
    (nonfinite, total, low, high, norm, _, _), counts = unpack(tensor_stats(x))
    assert nonfinite == x.numel() - finite.numel()
    assert norm == x.norm().item() or (math.isnan(norm) and math.isnan(x.norm().item()))
    if finite.numel():
        assert counts == [int(c) for c in torch.histc(finite, BINS).tolist()]
        low_edge, high_edge = (low - 1, high + 1) if low == high else (low, high)
        scaled = (x - low_edge) / (high_edge - low_edge)
        assert counts_by_sorting(scaled, BINS).tolist() == counts  # CUDA's path in deterministic mode
        assert (low, high) == (finite.min().item(), finite.max().item())
        assert total == pytest.approx(finite.sum().item(), rel=1e-4, abs=1e-3)
    else:
        assert counts == [0] * BINS


values_with_nonfinite = st.lists(st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from(
    [math.nan, math.inf, -math.inf])), min_size=1, max_size=60)


@settings(max_examples=100, deadline=None)
@given(st.lists(values_with_nonfinite, min_size=1, max_size=8), st.booleans())
def test_statistics_of_many_small_tensors_together_equal_each_tensors_own(tensors, half):
    tensors = [torch.tensor(t, dtype=torch.float32) for t in tensors]
    if half:
        tensors = [t.half() for t in tensors]
    rows = group_stats([flatten(t) for t in tensors]).tolist()
    for t, row in zip(tensors, rows):
        alone = tensor_stats(t).tolist()
        assert row[HEAD:] == alone[HEAD:]  # the same buckets
        for i in (0, 2, 3, 4, 5, 6):  # nonfinite, min, max, norm, edges: bit for bit
            assert row[i] == alone[i] or (math.isnan(row[i]) and math.isnan(alone[i]))
        finite = [v for v in t.float().tolist() if math.isfinite(v)]
        assert row[1] == pytest.approx(math.fsum(finite), abs=1e-9 * (1 + sum(map(abs, finite))))


class Wide(nn.Module):
    """A layer too big to batch (more weights than small_limit) between small ones."""

    def __init__(self) -> None:
        super().__init__()
        width = small_limit(torch.device("cpu")) // 64 + 1
        self.a, self.wide, self.b = nn.Linear(8, 64), nn.Linear(64, width), nn.Linear(width, 2)
        assert self.wide.weight.numel() > small_limit(self.wide.weight.device) >= self.b.weight.numel()

    def forward(self, x: torch.Tensor, fail: bool = False) -> torch.Tensor:
        h = torch.relu(self.wide(torch.relu(self.a(x))))
        if fail:  # raised in the middle of backward, after b's gradients were accumulated
            h.register_hook(lambda g: (_ for _ in ()).throw(RuntimeError("boom")))
        return self.b(h)


def test_large_and_small_tensors_are_logged_every_pass_and_a_failed_backward_loses_only_its_own(emitter_env):
    torch.manual_seed(0)
    model = Wide()
    run = emitter.init(project=project())
    emitter.watch(model, log="all", log_freq=1)
    for step in range(4):
        loss = model(torch.randn(4, 8), fail=step == 1).sum()
        if step == 1:
            with pytest.raises(RuntimeError, match="boom"):
                loss.backward()
        else:
            loss.backward()
        model.zero_grad()
        emitter.log({"step": step})
    emitter.finish()

    rows = emitter_env.query("SELECT key, step, count FROM histograms FINAL WHERE run_id = {r:String}", r=run.id)
    keys = {f"{kind}/{name}": p.numel() for name, p in model.named_parameters()
            for kind in ("gradients", "parameters")}
    for step in (0, 2, 3):
        assert {r["key"]: r["count"] for r in rows if r["step"] == step} == keys
    # b's gradients were accumulated before the failure, but its pass's batch went with the failed backward
    assert [r for r in rows if r["step"] == 1] == []
    assert run.summary.get("_pulse/watch_errors") is None


def test_device_statistics_of_half_precision_constant_and_empty_tensors():
    half = torch.randn(1000).half()
    _, counts = unpack(tensor_stats(half))
    assert counts == [int(c) for c in torch.histc(half.float(), BINS).tolist()]
    (_, _, low, high, _, low_edge, high_edge), counts = unpack(tensor_stats(torch.full((10,), 3.0)))
    assert (low, high, low_edge, high_edge) == (3.0, 3.0, 2.0, 4.0)  # histc widens a zero range by 1
    assert counts == [int(c) for c in torch.histc(torch.full((10,), 3.0), BINS).tolist()]
    assert unpack(tensor_stats(torch.empty(0)))[1] == [0] * BINS


def test_a_pass_whose_small_tensors_fill_the_batch_budget_computes_them_in_several_batches(emitter_env,
                                                                                           monkeypatch):
    from emitter import torch_hooks

    monkeypatch.setattr(torch_hooks, "BATCH", 200)  # Net's small tensors hold 4..432 values each
    torch.manual_seed(0)
    model = Net()
    run = emitter.init(project=project())
    emitter.watch(model, log="all", log_freq=1)
    expected = {}
    for step in range(2):
        model.zero_grad()
        model(torch.randn(4, 1, 8, 8)).sum().backward()
        for name, p in model.named_parameters():
            for kind, t in (("gradients", p.grad), ("parameters", p.detach())):
                expected[(f"{kind}/{name}", step)] = [int(c) for c in torch.histc(t, BINS).tolist()]
        emitter.log({"step": step})
    emitter.finish()
    rows = emitter_env.query("SELECT key, step, bucket_counts FROM histograms FINAL WHERE run_id = {r:String}",
                             r=run.id)
    assert {(r["key"], r["step"]): r["bucket_counts"] for r in rows} == expected
