"""Every dashboard page: its logic through streamlit.testing's AppTest, and the real page in headless
Chromium through shared/tools/page-check, against `pulse up` holding seeded runs (see
test_dashboard_seed). A run that keeps logging must show new points without a page reload."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from dashboard_stack import LiveRun, shared_stack
from test_dashboard_seed import HOSTILE_KEY, HOSTILE_RUN

from conftest import ROOT, free_port
from dashboard.runs_table import link_name

APP = ROOT / "dashboard" / "app.py"
# The workplace's headless-browser tool, in shared/ beside the checkout (PAGE_CHECK overrides).
PAGE_CHECK = Path(os.environ.get("PAGE_CHECK", ROOT.parent / "shared" / "tools" / "page-check"))
CHROMIUM = os.environ.get("PAGE_CHECK_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def seeded_stack(request, tmp_path_factory):
    return shared_stack(request, tmp_path_factory)


def app(monkeypatch, address: str, view: str = "runs", **params: str):
    """The app at /<page>?<params>, run once, through AppTest."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PULSE_SERVER", address)
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    st.cache_resource.clear()  # the app caches its Source, which names a server
    st.cache_data.clear()
    at = AppTest.from_file(str(APP), default_timeout=60)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()  # the bare address opens /runs
    if view != "runs":
        at.switch_page(f"views/{view}.py").run()
    assert not at.exception, at.exception
    return at


def specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def rows(chart) -> list[dict]:
    """The data a chart draws (Streamlit ships it beside the spec, as Arrow)."""
    import pyarrow as pa

    found = []
    for dataset in chart.proto.datasets:
        found.extend(pa.ipc.open_stream(dataset.data.data).read_all().to_pylist())
    return found


def plain(text: str) -> str:
    """Markdown text without its escapes."""
    return text.replace("\\", "")


def names(table):
    """The run names a runs table shows (its name column holds links to the run pages)."""
    return table["name"].map(link_name)


def titles(at) -> list[str]:
    found = []
    for spec in specs(at):
        title = spec.get("title")
        found.append(title.get("text") if isinstance(title, dict) else title)
    return found


# -- /runs ------------------------------------------------------------------------------------------------


def test_runs_page_lists_runs_with_states_and_links(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, project=seeded.project)
    assert at.header[0].value == f"Runs · {seeded.project}"
    table = at.dataframe[0].value
    assert len(table) == len(seeded.runs) - 1
    assert dict(zip(names(table), table["state"]))["gamma-crashed"] == "crashed"
    assert {"config.lr", "config.batch_size", "val_loss", "run id", "notes", "error", "host", "sweep",
            "job_type"} <= set(table.columns)
    gamma = table[names(table) == "gamma-crashed"].iloc[0]
    assert gamma["name"].startswith("run?") and f"run={seeded.runs['gamma-crashed']}" in gamma["name"]
    assert "Runs 1–22 of 22" in at.caption[0].value


def test_runs_page_filters_and_sorts_from_widgets_and_the_url(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, project=seeded.project, state="failed,crashed", sort="name",
             order="asc")
    assert list(names(at.dataframe[0].value)) == ["beta", "gamma-crashed", "trial-08"]
    at.multiselect(key="url:state").set_value([]).run()
    at.text_input(key="url:q").input("trial-1").run()
    assert list(names(at.dataframe[0].value)) == [f"trial-{i}" for i in range(10, 19)]
    assert at.query_params["q"] == "trial-1" and "state" not in at.query_params
    at.selectbox(key="url:where").set_value("config.lr").run()
    at.selectbox(key="url:op").set_value(">=").run()
    at.text_input(key="url:value").input("0.3").run()
    assert set(names(at.dataframe[0].value)) == {"trial-10", "trial-13"}


def test_runs_page_pages_through_many_runs(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, project=seeded.project, size="25", page="1")
    assert len(at.dataframe[0].value) == 22
    at = app(monkeypatch, stack.address, project=seeded.project, q="trial", size="25", page="2")
    assert "No runs on this page." in at.info[0].value


def test_runs_page_of_a_hostile_project_from_the_url(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, project=seeded.hostile_project)
    assert at.sidebar.selectbox[0].value == seeded.hostile_project
    assert list(names(at.dataframe[0].value)) == [HOSTILE_RUN]


def test_a_store_error_is_a_message(monkeypatch) -> None:
    at = app(monkeypatch, f"127.0.0.1:{free_port()}")
    assert "UNAVAILABLE" in at.error[0].value


# -- /charts ----------------------------------------------------------------------------------------------


def test_charts_page_draws_one_chart_per_key_grouped_by_prefix(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    ids = [seeded.runs["alpha"], seeded.runs["beta"]]
    at = app(monkeypatch, stack.address, "charts", project=seeded.project, runs=",".join(ids))
    assert sorted(at.sidebar.multiselect[0].value) == sorted(ids)
    assert titles(at) == ["lr", "Train/acc", "Train/loss", "Test/acc", "Test/loss"]  # training before test
    assert [s.value for s in at.subheader] == ["Metrics", "Train", "Test"]
    loss = specs(at)[2]
    marks = [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"] for layer in loss["layer"]]
    assert marks == ["area", "line", "rule", "point"]  # the min–max band, the line, NaN/Inf marks
    assert any("beta: 2 NaN, 1 +Inf" in plain(c.value) for c in at.caption)
    drawn = rows(at.get("vega_lite_chart")[2])
    assert max(r["max"] for r in drawn if r["max"] is not None) == 1e6  # the spike survives downsampling
    assert {r["series"] for r in drawn} == {"alpha", "beta"}


def test_charts_page_options_come_from_the_url(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "charts", project=seeded.project, run=seeded.runs["alpha"], x="wall",
             smooth="0.8", log="1", band="0", keys="^Train/")
    assert titles(at) == ["Train/acc", "Train/loss"]
    spec = specs(at)[1]
    assert spec["layer"][0]["encoding"]["x"]["type"] == "temporal"
    assert spec["layer"][-1]["encoding"]["y"]["scale"]["type"] == "log"
    marks = [layer["mark"]["type"] for layer in spec["layer"]]
    assert "area" not in marks and marks.count("line") == 2  # raw, faint, and smoothed
    drawn = rows(at.get("vega_lite_chart")[1])
    assert any(r["smooth"] != r["last"] for r in drawn if r["last"] is not None)
    at = app(monkeypatch, stack.address, "charts", project=seeded.project, run=seeded.runs["alpha"], x="relative")
    assert "time since start" in specs(at)[0]["layer"][0]["encoding"]["x"]["title"]


def test_charts_page_of_hostile_names(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "charts", project=seeded.hostile_project)
    assert titles(at) == [HOSTILE_KEY]
    assert at.sidebar.multiselect[0].format_func(at.sidebar.multiselect[0].value[0]) == HOSTILE_RUN


# -- /system, /model, /media ---------------------------------------------------------------------------------


def test_system_page_charts_gpus_per_device_then_cpu_memory_disk_network(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "system", project=seeded.project, run=seeded.runs["model-run"])
    assert [s.value for s in at.subheader] == ["GPU", "CPU", "Memory", "Disk", "Network", "Process"]
    assert set(titles(at)[:4]) == {"GPU utilisation (%)", "GPU memory used (MB)", "GPU power (W)",
                                   "GPU temperature (°C)"}
    assert {r["series"] for r in rows(at.get("vega_lite_chart")[0])} == {"gpu0", "gpu1"}
    at = app(monkeypatch, stack.address, "system", project=seeded.project, run=seeded.runs["alpha"])
    assert "No system samples" in at.info[0].value


def test_model_page_puts_gradient_health_first(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "model", project=seeded.project, run=seeded.runs["model-run"])
    assert [s.value for s in at.subheader] == ["Gradient health", "Gradient norms per layer",
                                               "Histograms over steps", "Model graph"]
    assert "NaN/Inf gradients" in at.error[0].value and "fc2.weight" in at.error[0].value
    assert "Exploding gradients" in at.warning[0].value and "fc1.weight" in at.warning[0].value
    assert [m.value for m in at.metric] == ["1 parameter", "1 parameter", "none"]
    chart_titles = titles(at)
    assert chart_titles[0] == "gradient L2 norm (log scale)"
    assert sorted(chart_titles[1:]) == ["fc1.bias", "fc2.bias", "⚠ fc1.weight", "⚠ fc2.weight"]
    assert at.multiselect(key="url:params").value == ["fc1.weight", "fc2.weight", "fc1.bias", "fc2.bias"]
    assert not at.get("graphviz_chart") and any("log_graph=True" in i.value for i in at.info)
    at = app(monkeypatch, stack.address, "model", project=seeded.project, run=seeded.runs["alpha"])
    assert not at.success  # no green box for a run that never called watch(): nothing was checked
    assert "No gradient data (watch() not called)" in at.info[0].value


def test_model_page_draws_the_graph_watch_wrote(monkeypatch, seeded_stack) -> None:
    """The graph of a real torch model, as `watch(model, log_graph=True)` stored it through the ingest."""
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "model", project=seeded.workspace, run=seeded.ws_runs["watched-mlp"])
    [graph] = at.get("graphviz_chart")
    assert "Linear" in graph.proto.spec and "Dropout" in graph.proto.spec and "weight 16×8" in graph.proto.spec
    assert "input" in graph.proto.spec and "->" in graph.proto.spec
    assert any("Sequential · 195 parameters · 4 modules · dataflow from torch.fx" in c.value for c in at.caption)
    assert "No gradient-health flags" in at.success[0].value  # watch() ran and found nothing wrong


def test_media_page_shows_images_per_key_at_the_chosen_step(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "media", project=seeded.project, run=seeded.runs["model-run"])
    if at.info:
        pytest.skip("this ingest stores no media yet (no blob store)")
    assert [s.value for s in at.subheader] == ["confusion", "samples"]
    images = at.get("image")
    assert len(images) == 4  # one confusion matrix, three samples at the last step
    assert images[-1].proto.imgs[0].caption == "sample 2 @ 200 (it's <ok>)"
    assert images[-1].proto.imgs[0].url.endswith(".png")  # as logged, not re-encoded
    at.select_slider(key="step:samples").set_value(100).run()
    assert at.get("image")[1].proto.imgs[0].caption.startswith("sample 0 @ 100")
    assert not at.warning


# -- /sweeps ----------------------------------------------------------------------------------------------------


def test_sweeps_page_analyses_a_sweep_without_its_sweeps_row(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "sweeps", project=seeded.project)
    assert at.query_params["sweep"] == seeded.sweep_id
    overview = at.dataframe[0].value
    assert list(overview["finished"]) == [15] and list(overview["stopped early"]) == [2]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Trials"] == "18" and metrics["Stopped early"] == "2" and metrics["Failed"] == "1"
    best = at.dataframe[1].value
    assert list(best["val_loss"]) == sorted(best["val_loss"]) and len(best) == 10
    assert set(best.columns) >= {"lr", "batch_size", "dropout"}
    chart_titles = titles(at)
    assert chart_titles[-4:-1] == ["batch_size", "dropout", "lr"]  # objective against each parameter
    importance = next(c for c in at.get("vega_lite_chart") if "hconcat" in c.proto.spec)
    ranked = rows(importance)
    assert ranked[0]["parameter"] == "lr" and ranked[0]["correlation"] > 0.8  # large lr, higher loss


# -- /sql -----------------------------------------------------------------------------------------------------------


def test_sql_page_runs_the_query_in_the_url_once_run_is_pressed_and_charts_it(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    query = ("SELECT name, JSONExtractFloat(summary, 'val_loss') AS val_loss FROM runs FINAL "
             "WHERE sweep_id != '' AND startsWith(name, 'trial-') ORDER BY name")
    at = app(monkeypatch, stack.address, "sql", sql=query)
    assert at.text_area[0].value == query
    assert not at.dataframe and "press **Run**" in at.info[0].value  # a link alone runs nothing
    at.button[0].click().run()
    assert list(at.dataframe[0].value["name"])[:2] == ["trial-01", "trial-02"]
    assert len(at.get("vega_lite_chart")) == 1
    assert at.get("download_button")


@pytest.mark.parametrize("statement, message", [("DROP TABLE runs", "only read-only queries"),
                                                ("SELEC 1", "Syntax error")])
def test_sql_page_shows_clickhouse_errors_not_tracebacks(monkeypatch, seeded_stack, statement, message) -> None:
    stack, _ = seeded_stack
    at = app(monkeypatch, stack.address, "sql")
    at.text_area[0].input(statement)
    at.button[0].click().run()
    assert not at.exception and message in at.error[0].value


# -- the real pages in Chromium ----------------------------------------------------------------------------------


def page_check(url: str, out: Path, *args: str, timeout: int = 90) -> dict:
    result = subprocess.run([sys.executable, str(PAGE_CHECK), url, "--out", str(out), "--timeout", str(timeout),
                             *args], capture_output=True, text=True, timeout=timeout + 60)
    keep_screenshot(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["exceptions"] == 0, report["exception_texts"]
    return report


def keep_screenshot(shot: Path) -> None:
    if os.environ.get("PULSE_SCREENSHOT_DIR") and shot.exists():
        shutil.copy(shot, Path(os.environ["PULSE_SCREENSHOT_DIR"]) / shot.name)


@pytest.fixture(scope="module")
def browser() -> None:
    if not PAGE_CHECK.exists():
        pytest.skip(f"no page-check at {PAGE_CHECK} (shared/tools beside the checkout, or set PAGE_CHECK)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    pytest.importorskip("playwright", reason="page-check needs `pip install playwright`")


PAGES = {
    # page: (query built from the seed, texts to wait for, fewest charts drawn)
    "runs": (lambda s: {"project": s.project}, ["Runs 1–22 of 22"], 0),
    "charts": (lambda s: {"project": s.project, "runs": f"{s.runs['alpha']},{s.runs['beta']}"},
               ["Train", "non-finite values"], 5),
    "system": (lambda s: {"project": s.project, "run": s.runs["model-run"]}, ["GPU utilisation (%)"], 9),
    "model": (lambda s: {"project": s.workspace, "run": s.ws_runs["watched-mlp"]}, ["Gradient health", "Dropout"],
              6),
    "media": (lambda s: {"project": s.project, "run": s.runs["model-run"]}, ["samples"], 0),
    "sweeps": (lambda s: {"project": s.project}, ["Parallel coordinates", "Parameter importance"], 6),
    "sql": (lambda s: {}, ["Schema", "Quick chart"], 1),
}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_renders_in_chromium(browser, seeded_stack, tmp_path: Path, page: str) -> None:
    stack, seeded = seeded_stack
    query, texts, charts = PAGES[page]
    url = f"{stack.url}/{page}?{urlencode(query(seeded))}"
    waits = [arg for text in texts for arg in ("--wait-text", text)]
    report = page_check(url, tmp_path / f"dashboard-{page}.png", *waits, "--strict" if page != "model" else "-v")
    assert report["charts"] >= charts, report["chart_breakdown"]
    assert not report.get("charts_pending")
    if page == "model":
        assert report["chart_breakdown"]["graphviz"] == 1  # the graph watch() wrote
        assert [a for a in report["error_alerts"] if "NaN/Inf gradients" not in a] == []  # the flag is the error


def test_hostile_project_page_renders_in_chromium(browser, seeded_stack, tmp_path: Path) -> None:
    stack, seeded = seeded_stack
    url = f"{stack.url}/charts?{urlencode({'project': seeded.hostile_project})}"
    report = page_check(url, tmp_path / "dashboard-hostile.png", "--wait-text", "o'brien", "--strict")
    assert report["charts"] == 1


def test_a_live_run_gains_points_on_the_charts_page_without_a_reload(browser, seeded_stack, tmp_path: Path) -> None:
    """Two screenshots: one of the first 200 steps; then, in one page load, the fragment's timer
    redraws the chart once 200 more arrive (page-check never reloads: the text can only come from it)."""
    stack, seeded = seeded_stack
    live = LiveRun(stack.address, f"{seeded.project}-live")
    try:
        live.log(range(200))
        url = f"{stack.url}/charts?{urlencode({'project': f'{seeded.project}-live', 'run': live.run_id})}"
        first = page_check(url, tmp_path / "dashboard-live-1.png", "--wait-text", "step 199 · 200 points")
        assert first["charts"] == 1
        command = [sys.executable, str(PAGE_CHECK), url, "--out", str(tmp_path / "dashboard-live-2.png"),
                   "--timeout", "90", "--wait-text", "step 399 · 400 points", "-v"]
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in second.stderr:  # the page is up, showing the first 200 steps
            if "initial render" in line:
                break
        live.log(range(200, 400))
        out, err = second.communicate(timeout=150)
        keep_screenshot(tmp_path / "dashboard-live-2.png")
        assert second.returncode == 0, out[-3000:] + err[-2000:]
        report = json.loads(out)
        assert report["charts"] == 1 and report["exceptions"] == 0
    finally:
        live.finish()
