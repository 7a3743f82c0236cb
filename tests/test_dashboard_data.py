"""dashboard/data.py against the real store: `pulse up` (ingest + embedded chDB, read through the Query
RPC) holding runs written through the real wire, and a ClickHouse HTTP server (chDB behind
ClickHouse's HTTP interface) read directly with clickhouse-connect. Hostile names throughout."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from dashboard_stack import shared_stack
from test_dashboard_seed import (
    HOSTILE_CONFIG_KEY,
    HOSTILE_KEY,
    HOSTILE_RUN,
    HOSTILE_TAG,
    PARAMS,
    SPIKE,
    SPIKE_STEP,
    STEPS,
)

from conftest import free_port
from dashboard.blobs import BlobUnavailable, read_blob
from dashboard.data import DataError, RunFilter, RunSort, Source
from pulse.graph_schema import decode as decode_graph


@pytest.fixture(scope="module")
def seeded_stack(request, tmp_path_factory):
    return shared_stack(request, tmp_path_factory)


@pytest.fixture(scope="module")
def store(seeded_stack):
    stack, seeded = seeded_stack
    return Source(server=stack.address, clickhouse_url=""), seeded


def names(table: pa.Table) -> list[str]:
    return table.column("name").to_pylist()


# -- runs --------------------------------------------------------------------------------------------


def test_runs_page_lists_every_run_with_state_duration_and_total(store) -> None:
    source, seeded = store
    page = source.runs_page(seeded.project, limit=100).to_pylist()
    assert len(page) == len(seeded.runs) - 1  # the hostile run lives in its own project
    assert {r["total"] for r in page} == {len(page)}
    by_name = {r["name"]: r for r in page}
    assert by_name["gamma-crashed"]["state"] == "crashed"
    assert by_name["beta"]["state"] == "failed" and by_name["beta"]["error"] == "RuntimeError: loss is NaN"
    assert by_name["alpha"]["duration_s"] > 0
    assert [r["created_at"] for r in page] == sorted((r["created_at"] for r in page), reverse=True)


def test_runs_page_pages_in_sql(store) -> None:
    source, seeded = store
    everything = names(source.runs_page(seeded.project, limit=100))
    first, second = (names(source.runs_page(seeded.project, limit=5, offset=o)) for o in (0, 5))
    assert first + second == everything[:10]
    beyond = source.runs_page(seeded.project, limit=5, offset=1000)
    assert beyond.num_rows == 0


@pytest.mark.parametrize("where, expected", [
    (RunFilter(text="ALPH"), {"alpha"}),
    (RunFilter(states=("failed", "crashed")), {"beta", "gamma-crashed", "trial-08"}),
    (RunFilter(tag=HOSTILE_TAG), {"alpha"}),
    (RunFilter(tag="nan-hunt"), {"beta"}),
    (RunFilter(key="lr", op="=", value="0.1"), {"alpha"}),
    (RunFilter(key="lr", op=">=", value="0.5"), {"gamma-crashed", "trial-05", "trial-10", "trial-08"}),
    (RunFilter(key="optimizer", op="=", value="adam"), {"alpha", "beta"}),
    (RunFilter(key="optimizer", op="contains", value="ADA"), {"alpha", "beta"}),
    (RunFilter(key=HOSTILE_CONFIG_KEY, op="=", value="v'al"), {"alpha"}),
    (RunFilter(field="summary", key="val_loss", op="<", value="0.3"), {"trial-03", "trial-11", "trial-15"}),
    (RunFilter(text="trial", states=("killed",)), {"trial-05", "trial-12"}),
])
def test_runs_page_filters_in_sql(store, where: RunFilter, expected: set[str]) -> None:
    source, seeded = store
    page = source.runs_page(seeded.project, where, limit=100)
    assert set(names(page)) == expected
    assert page.column("total").to_pylist()[:1] == [len(expected)]


def test_runs_page_sorts_by_columns_config_and_summary_either_way(store) -> None:
    source, seeded = store
    project = seeded.project
    by_name = names(source.runs_page(project, sort=RunSort("name", descending=False), limit=100))
    assert by_name == sorted(by_name)
    trials = RunFilter(text="trial-")
    ascending = source.runs_page(project, trials, RunSort("summary", "val_loss", descending=False), limit=100,
                                 summary_keys=["val_loss"]).to_pylist()
    losses = [json.loads(r["summary_values"][0]) for r in ascending if r["summary_values"][0]]
    assert losses == sorted(losses)
    assert ascending[-1]["name"] == "trial-08"  # no val_loss in its summary: last, whichever the order
    descending = names(source.runs_page(project, trials, RunSort("summary", "val_loss"), limit=100))
    assert descending[-1] == "trial-08" and descending[:-1] == [r["name"] for r in ascending[:-1]][::-1]
    by_lr = source.runs_page(project, RunFilter(), RunSort("config", "lr"), limit=100, config_keys=["lr"])
    lrs = [float(v[0]) for v in by_lr.column("config_values").to_pylist() if v[0]]
    assert lrs == sorted(lrs, reverse=True)


def test_runs_page_extracts_config_and_summary_columns(store) -> None:
    source, seeded = store
    row = source.runs_page(seeded.project, RunFilter(text="alpha"), config_keys=["lr", "layers", "missing",
                                                                                  HOSTILE_CONFIG_KEY],
                           summary_keys=["Train/acc"]).to_pylist()[0]
    assert [json.loads(v) if v else None for v in row["config_values"]] == [0.1, [64, 32], None, "v'al"]
    assert float(row["summary_values"][0]) == pytest.approx(0.99, abs=0.02)
    assert row["tags"] == ["baseline", HOSTILE_TAG]


def test_run_keys_tags_and_states_describe_the_project(store) -> None:
    source, seeded = store
    config = {r["key"]: r for r in source.run_keys(seeded.project, "config").to_pylist()}
    assert config["lr"]["runs"] == len(seeded.runs) - 1 and config["lr"]["type"] == "Double"
    assert config["layers"]["type"] == "Array" and HOSTILE_CONFIG_KEY in config
    summary = {r["key"] for r in source.run_keys(seeded.project, "summary").to_pylist()}
    assert {"val_loss", "Train/loss", "gradient_health"} <= summary
    assert {r["tag"]: r["runs"] for r in source.tags(seeded.project).to_pylist()} == {
        "baseline": 1, HOSTILE_TAG: 1, "nan-hunt": 1}
    states = {r["state"]: r["runs"] for r in source.states(seeded.project).to_pylist()}
    assert states == {"finished": 17, "failed": 2, "killed": 2, "crashed": 1}


def test_summary_with_nan_still_reads_as_json_in_sql(store) -> None:
    """Python writes NaN into summaries; ClickHouse's JSON functions would drop the whole document."""
    source, seeded = store
    keys = {r["key"] for r in source.run_keys(seeded.hostile_project, "summary").to_pylist()}
    assert keys == {HOSTILE_KEY, "nan_metric"}
    page = source.runs_page(seeded.hostile_project, RunFilter(field="summary", key=HOSTILE_KEY, op=">", value="8"),
                            summary_keys=[HOSTILE_KEY, "nan_metric"]).to_pylist()
    assert [r["name"] for r in page] == [HOSTILE_RUN]
    assert [json.loads(v) for v in page[0]["summary_values"]] == [9.0, None]


def test_runs_by_id_keep_only_the_named_runs_of_the_project(store) -> None:
    source, seeded = store
    ids = [seeded.runs["alpha"], seeded.runs["beta"], "no-such-run"]
    rows = source.runs(seeded.project, ids).to_pylist()
    assert sorted(r["name"] for r in rows) == ["alpha", "beta"]
    assert json.loads(rows[0]["config"])["optimizer"] == "adam"
    assert source.runs(seeded.hostile_project, ids).num_rows == 0
    assert source.runs(seeded.project, []).num_rows == 0


# -- series -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("buckets", [1, 7, 100, 800, 5000])
def test_series_downsampling_keeps_the_spike_in_max(store, buckets: int) -> None:
    source, seeded = store
    alpha = seeded.runs["alpha"]
    rows = source.series(seeded.project, [alpha], "Train/loss", buckets=buckets).to_pylist()
    assert 0 < len(rows) <= min(buckets, STEPS)
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    assert rows[-1]["step"] == STEPS - 1
    assert sum(r["points"] for r in rows) == STEPS
    assert all(r["min"] <= r["last"] <= r["max"] for r in rows)
    spike = [r for r in rows if r["max"] == SPIKE]
    assert len(spike) == 1 and spike[0]["step"] >= SPIKE_STEP


def test_series_counts_nan_and_inf_per_bucket_and_keeps_finite_aggregates(store) -> None:
    source, seeded = store
    rows = source.series(seeded.project, [seeded.runs["beta"]], "Train/loss", buckets=2000).to_pylist()
    assert sum(r["nan"] for r in rows) == 2 and sum(r["posinf"] for r in rows) == 1
    assert sum(r["neginf"] for r in rows) == 0
    flagged = {r["step"] for r in rows if r["nan"] or r["posinf"]}
    assert flagged == {700, 701, 1500}
    only_nan = [r for r in rows if r["step"] == 700]
    assert only_nan[0]["min"] is None and only_nan[0]["last"] is None  # a bucket with nothing finite
    finite = [r for r in rows if r["points"] > r["nan"] + r["posinf"]]
    assert all(math.isfinite(r["min"]) and math.isfinite(r["max"]) for r in finite)


def test_series_of_several_runs_and_keys_in_one_query(store) -> None:
    source, seeded = store
    ids = [seeded.runs["alpha"], seeded.runs["beta"]]
    table = source.series(seeded.project, ids, ["Train/acc", "Test/loss", "no/such-key"], buckets=50)
    pairs = {(r["run_id"], r["key"]) for r in table.to_pylist()}
    assert pairs == {(i, k) for i in ids for k in ("Train/acc", "Test/loss")}
    assert source.metric_keys(seeded.project, ids) == ["Test/acc", "Test/loss", "Train/acc", "Train/loss", "lr"]
    assert source.metric_keys(seeded.project, []) == []


def test_series_has_sample_times_for_wall_and_relative_axes(store) -> None:
    source, seeded = store
    rows = source.series(seeded.project, [seeded.runs["alpha"]], "Train/acc", buckets=10).to_pylist()
    times = [r["ts"] for r in rows]
    assert times == sorted(times) and (times[-1] - times[0]).total_seconds() > 1000


# -- system, model, media ------------------------------------------------------------------------------


def test_system_series_per_device_downsampled_over_time(store) -> None:
    source, seeded = store
    run = seeded.runs["model-run"]
    keys = {r["key"]: sorted(r["devices"]) for r in source.system_keys(seeded.project, [run]).to_pylist()}
    assert keys["gpu.util"] == ["gpu0", "gpu1"] and keys["cpu.percent"] == [""]
    rows = source.system_series(seeded.project, [run], ["gpu.util", "cpu.percent"], buckets=40).to_pylist()
    per_series: dict[tuple, int] = {}
    for r in rows:
        per_series[(r["key"], r["device"])] = per_series.get((r["key"], r["device"]), 0) + 1
    assert set(per_series) == {("gpu.util", "gpu0"), ("gpu.util", "gpu1"), ("cpu.percent", "")}
    assert all(0 < n <= 40 for n in per_series.values())
    assert sum(r["points"] for r in rows if r["device"] == "gpu0") == 300


def test_histograms_graph_and_alerts_of_a_watched_run(store) -> None:
    source, seeded = store
    run = seeded.runs["model-run"]
    keys = {r["key"]: r for r in source.histogram_keys(seeded.project, run).to_pylist()}
    assert set(keys) == {f"{kind}/{p}" for kind in ("gradients", "parameters") for p in PARAMS}
    poisoned = keys["gradients/fc2.weight"]
    assert poisoned["nonfinite_total"] == 5 * 10 and poisoned["first_nonfinite_step"] == 400
    rows = source.histograms(seeded.project, run, ["gradients/fc1.weight"], steps=20).to_pylist()
    assert 0 < len(rows) <= 20 and rows[-1]["step"] == 490
    assert all(len(r["edges"]) == len(r["counts"]) + 1 for r in rows)
    assert source.model_graph(seeded.project, run) == ""  # hand-made batches carry no graph
    watched = seeded.ws_runs["watched-mlp"]
    [model] = decode_graph(source.model_graph(seeded.workspace, watched)).models  # as watch() wrote it
    assert model.name == "Sequential" and model.dataflow == "torch.fx"
    assert [m.type for m in model.modules] == ["Sequential", "Linear", "ReLU", "Dropout", "Linear"]
    assert (model.edges[0].source, model.edges[0].target) == ("input", "0")
    alerts = source.alerts(seeded.project, [run]).to_pylist()
    assert [a["title"] for a in alerts] == ["Accuracy target reached", "Gradient nonfinite: fc2.weight",
                                            "Gradient exploding: fc1.weight"]


def test_media_rows_and_their_blobs(store) -> None:
    source, seeded = store
    run = seeded.runs["model-run"]
    keys = {r["key"]: r for r in source.media_keys(seeded.project, run).to_pylist()}
    if not keys:
        pytest.skip("this ingest stores no media yet (no blob store)")
    assert sorted(keys["samples"]["steps"]) == [0, 100, 200] and keys["samples"]["items"] == 9
    items = source.media(seeded.project, run, "samples", 100).to_pylist()
    assert [i["idx"] for i in items] == [0, 1, 2] and items[1]["caption"] == "sample 1 @ 100 (it's <ok>)"
    data = read_blob(items[1]["uri"], items[1]["sha256"])
    assert data.startswith(b"\x89PNG")
    with pytest.raises(BlobUnavailable, match="sha256 mismatch"):
        read_blob(items[1]["uri"], items[0]["sha256"])
    with pytest.raises(BlobUnavailable, match="outside the blob store"):
        read_blob(items[1]["uri"], items[1]["sha256"], root="/nonexistent-root")
    with pytest.raises(BlobUnavailable, match="gs:// media are not readable"):
        read_blob("gs://bucket/key.png", "")


# -- sweeps -----------------------------------------------------------------------------------------------


def test_sweeps_listed_from_runs_when_no_sweep_row_exists(store) -> None:
    source, seeded = store
    [sweep] = source.sweeps(seeded.project).to_pylist()
    assert sweep["sweep_id"] == seeded.sweep_id and sweep["config"] == ""
    counts = (sweep["trials"], sweep["finished"], sweep["stopped"], sweep["failed"], sweep["running"])
    assert counts == (18, 15, 2, 1, 0)
    trials = source.sweep_runs(seeded.project, seeded.sweep_id).to_pylist()
    assert [t["name"] for t in trials] == [f"trial-{i:02d}" for i in range(1, 19)]
    assert "val_loss" in json.loads(trials[0]["summary"])


# -- SQL console ---------------------------------------------------------------------------------------------


def test_schema_lists_the_public_tables(store) -> None:
    source, _ = store
    columns = {(r["table"], r["column"]) for r in source.schema().to_pylist()}
    for table, column in [("runs", "summary"), ("metrics", "value"), ("system_metrics", "device"),
                          ("histograms", "bucket_counts"), ("media", "uri"), ("model_graphs", "graph"),
                          ("alerts", "level"), ("sweeps", "config")]:
        assert (table, column) in columns


@pytest.mark.parametrize("statement, message", [
    ("DROP TABLE runs", "only read-only queries"),
    ("INSERT INTO alerts (title) VALUES ('x')", "only read-only queries"),
    ("SELECT 1; SELECT 2", "Multi-statements"),
    ("SELEC 1", "Syntax error"),
    ("SELECT no_such_column FROM runs", "Unknown expression"),
    ("SELECT number FROM numbers(20)", "Limit for result exceeded"),
])
def test_sql_console_errors_are_clickhouse_messages(store, statement: str, message: str) -> None:
    source, _ = store
    with pytest.raises(DataError) as caught:
        source.sql(statement, max_rows=10)
    assert message.lower() in str(caught.value).lower()
    assert "Traceback" not in str(caught.value) and "\n" not in str(caught.value)


def test_sql_console_returns_rows(store) -> None:
    source, seeded = store
    table = source.sql("SELECT count() AS n FROM runs FINAL WHERE name LIKE 'trial-%'")
    assert table.to_pylist() == [{"n": 18}]


# -- hostile names -------------------------------------------------------------------------------------------


def test_hostile_names_are_data_not_sql(store) -> None:
    source, seeded = store
    project = seeded.hostile_project
    assert project in source.projects()
    page = source.runs_page(project, RunFilter(text=HOSTILE_RUN[:12], tag=HOSTILE_TAG),
                            RunSort("config", HOSTILE_CONFIG_KEY), config_keys=[HOSTILE_CONFIG_KEY]).to_pylist()
    assert [r["name"] for r in page] == [HOSTILE_RUN] and page[0]["config_values"] == ['"x\'y"']
    run = page[0]["run_id"]
    assert source.metric_keys(project, [run]) == [HOSTILE_KEY]
    series = source.series(project, [run], HOSTILE_KEY, buckets=800)
    assert series.column("last").to_pylist() == [float(s) for s in range(10)]
    for bad in ("'; DROP TABLE runs; --", "p' OR '1'='1", "p\\", "p'"):
        assert source.runs_page(bad).num_rows == 0
        assert source.runs_page(seeded.project, RunFilter(text=bad, tag=bad, key=bad, value=bad)).num_rows == 0
    assert source.metric_keys(seeded.project, ["' OR 1=1 --", "x\\", "\"]"]) == []
    assert source.series(seeded.project, [seeded.runs["alpha"]], "Train/loss' OR '1'='1").num_rows == 0
    assert source.sweeps("x' OR '1'='1").num_rows == 0
    assert source.runs_page(seeded.project).num_rows > 0  # nothing was dropped


def test_unknown_sort_or_operator_is_refused_before_any_sql() -> None:
    source = Source(server=f"127.0.0.1:{free_port()}", clickhouse_url="")
    with pytest.raises(ValueError, match="sort must be one of"):
        source.runs_page("p", sort=RunSort("created_at; DROP TABLE runs"))
    with pytest.raises(ValueError, match="filter operator"):
        source.runs_page("p", RunFilter(key="lr", op="; DROP", value="1"))


def test_an_unreachable_server_is_a_data_error_with_the_reason() -> None:
    with pytest.raises(DataError, match="UNAVAILABLE"):
        Source(server=f"127.0.0.1:{free_port()}", clickhouse_url="").projects()
