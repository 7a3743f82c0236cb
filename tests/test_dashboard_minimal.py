"""The minimal dashboard against a real ingest (chDB) and real runs logged by the emitter.

(a) dashboard/data.py's queries, (b) the Streamlit script through AppTest, (c) the page in a
real headless Chromium through shared/tools/page-check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, Ingest, free_port, run_script, wait_for
from dashboard.data import DataError, Source
from fixtures.clickhouse_http import serve_clickhouse_http

APP = ROOT / "dashboard" / "app.py"
PAGE_CHECK = ROOT.parent / "shared" / "tools" / "page-check"
CHROMIUM = os.environ.get("PAGE_CHECK_CHROMIUM", "/usr/bin/chromium")

PROJECT = f"dash-{uuid.uuid4().hex[:8]}"
STEPS = 3000
SPIKE_STEP, SPIKE = 1234, 1e6
HOSTILE_PROJECT = f"x'; DROP TABLE runs; --\\{uuid.uuid4().hex[:8]}"
HOSTILE_KEY = "we'ird\\key\"; DROP TABLE metrics; --"
HOSTILE_RUN = "o'brien \"\\ run"

EMIT = textwrap.dedent(f"""
    import emitter
    for name in ("alpha-run", "beta-run"):
        with emitter.init(project={PROJECT!r}, name=name, config={{"lr": 0.1}}):
            for step in range({STEPS}):
                loss = 1.0 / (step + 1)
                if name == "alpha-run" and step == {SPIKE_STEP}:
                    loss = {SPIKE!r}
                emitter.log({{"train/loss": loss, "train/acc": step / {STEPS}}})
    with emitter.init(project={HOSTILE_PROJECT!r}, name={HOSTILE_RUN!r}):
        for step in range(10):
            emitter.log({{{HOSTILE_KEY!r}: float(step)}})
""")


@pytest.fixture(scope="module")
def server(ingest, tmp_path_factory) -> str:
    """The shared ingest, holding two finished runs of PROJECT and one of HOSTILE_PROJECT."""
    spool = tmp_path_factory.mktemp("dashboard-spool")
    result = run_script(EMIT, env={"PULSE_SERVER": ingest.address, "PULSE_DIR": str(spool)}, timeout=300)
    assert result.returncode == 0, result.stderr
    return ingest.address


@pytest.fixture(scope="module")
def source(server: str) -> Source:
    return Source(server=server, clickhouse_url="")


def run_ids(source: Source, project: str) -> dict[str, str]:
    """name -> run_id."""
    return {row["name"]: row["run_id"] for row in source.runs(project).to_pylist()}


# -- (a) the data module ---------------------------------------------------------------------------


def test_projects_and_runs_list_what_the_emitter_logged(source: Source) -> None:
    assert {PROJECT, HOSTILE_PROJECT} <= set(source.projects())
    runs = source.runs(PROJECT).to_pylist()
    assert sorted(r["name"] for r in runs) == ["alpha-run", "beta-run"]
    assert {r["state"] for r in runs} == {"finished"}
    assert set(runs[0]) == {"run_id", "name", "state", "created_at", "heartbeat_at", "summary"}
    assert json.loads(runs[0]["summary"])["train/acc"] == pytest.approx((STEPS - 1) / STEPS)


def test_metric_keys_of_selected_runs(source: Source) -> None:
    ids = list(run_ids(source, PROJECT).values())
    assert source.metric_keys(PROJECT, ids) == ["train/acc", "train/loss"]
    assert source.metric_keys(PROJECT, []) == []


@pytest.mark.parametrize("buckets", [1, 7, 100, 800, 5000])
def test_series_downsampling_keeps_the_spike_in_max(source: Source, buckets: int) -> None:
    ids = run_ids(source, PROJECT)
    table = source.series(PROJECT, list(ids.values()), "train/loss", buckets=buckets)
    assert table.column_names == ["run_id", "step", "min", "max", "last"]
    for name, run_id in ids.items():
        rows = [r for r in table.to_pylist() if r["run_id"] == run_id]
        assert 0 < len(rows) <= min(buckets, STEPS)
        assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
        assert rows[-1]["step"] == STEPS - 1
        assert rows[-1]["last"] == pytest.approx(1.0 / STEPS)  # the value at the bucket's last step
        assert min(r["min"] for r in rows) == pytest.approx(1.0 / STEPS)
        assert all(r["min"] <= r["last"] <= r["max"] for r in rows)
        spike = [r for r in rows if r["max"] == SPIKE]
        if name == "alpha-run":
            assert len(spike) == 1 and spike[0]["step"] >= SPIKE_STEP
        else:
            assert spike == []


def test_hostile_names_are_data_not_sql(source: Source) -> None:
    ids = run_ids(source, HOSTILE_PROJECT)
    assert list(ids) == [HOSTILE_RUN]
    assert source.metric_keys(HOSTILE_PROJECT, list(ids.values())) == [HOSTILE_KEY]
    series = source.series(HOSTILE_PROJECT, list(ids.values()), HOSTILE_KEY, buckets=800)
    assert series.column("last").to_pylist() == [float(step) for step in range(10)]

    for project in ("'; DROP TABLE runs; --", "proj' OR '1'='1", "proj\\", "proj'"):
        assert source.runs(project).num_rows == 0
    alpha = run_ids(source, PROJECT)["alpha-run"]
    assert source.metric_keys(PROJECT, ["' OR 1=1 --", "x\\", "\"]"]) == []
    assert source.series(PROJECT, [alpha], "train/loss' OR '1'='1", buckets=10).num_rows == 0
    assert source.series(PROJECT, [alpha, "'); DROP TABLE metrics; --"], "train/loss").num_rows > 0
    assert {PROJECT, HOSTILE_PROJECT} <= set(source.projects())  # nothing was dropped


def test_an_unreachable_server_is_a_data_error_with_the_reason() -> None:
    with pytest.raises(DataError, match="UNAVAILABLE"):
        Source(server=f"127.0.0.1:{free_port()}", clickhouse_url="").projects()


def test_source_reads_a_clickhouse_server_directly(tmp_path: Path) -> None:
    """PULSE_CLICKHOUSE_URL=http(s)://... : the same queries over clickhouse-connect's HTTP client."""
    with serve_clickhouse_http(tmp_path / "clickhouse") as url:
        ingest = Ingest(tmp_path / "data", "--clickhouse", url, "--flush-interval", "0.1").start()
        try:
            result = run_script(EMIT, env={"PULSE_SERVER": ingest.address, "PULSE_DIR": str(tmp_path / "spool")},
                                timeout=300)
            assert result.returncode == 0, result.stderr
        finally:
            ingest.stop()
        source = Source(server="127.0.0.1:1", clickhouse_url=url)  # the server is never asked
        assert {PROJECT, HOSTILE_PROJECT} <= set(source.projects())
        ids = run_ids(source, PROJECT)
        assert source.metric_keys(PROJECT, list(ids.values())) == ["train/acc", "train/loss"]
        series = source.series(PROJECT, [ids["alpha-run"]], "train/loss", buckets=100)
        assert series.num_rows <= 100 and max(series.column("max").to_pylist()) == SPIKE
        hostile = run_ids(source, HOSTILE_PROJECT)
        assert source.metric_keys(HOSTILE_PROJECT, list(hostile.values())) == [HOSTILE_KEY]
    with pytest.raises(DataError, match=url.removeprefix("http://")):  # the server is gone now
        Source(clickhouse_url=url).projects()


# -- (b) the Streamlit script, without a browser ----------------------------------------------------


def app_test(monkeypatch, server: str, project: str | None = None, run: str | None = None):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PULSE_SERVER", server)
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    st.cache_resource.clear()  # the app caches its Source, which names a server
    at = AppTest.from_file(str(APP), default_timeout=60)
    if project is not None:
        at.query_params["project"] = project
    if run is not None:
        at.query_params["run"] = run
    return at.run()


def test_app_shows_runs_and_one_chart_per_metric(monkeypatch, server: str, source: Source) -> None:
    at = app_test(monkeypatch, server, PROJECT)
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Pulse"
    assert at.selectbox[0].value == PROJECT
    assert sorted(at.multiselect[0].value) == sorted(run_ids(source, PROJECT).values())
    table = at.dataframe[0].value
    assert sorted(table["name"]) == ["alpha-run", "beta-run"]
    assert set(table["state"]) == {"finished"}
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2
    assert '"train/acc"' in charts[0].proto.spec and '"train/loss"' in charts[1].proto.spec


def test_app_selects_the_run_named_in_the_query_string(monkeypatch, server: str, source: Source) -> None:
    beta = run_ids(source, PROJECT)["beta-run"]
    at = app_test(monkeypatch, server, PROJECT, run=beta)
    assert not at.exception and not at.error
    assert at.multiselect[0].value == [beta]
    assert len(at.get("vega_lite_chart")) == 2


def test_app_opens_a_hostile_project_from_the_query_string(monkeypatch, server: str) -> None:
    at = app_test(monkeypatch, server, HOSTILE_PROJECT)
    assert not at.exception and not at.error
    assert at.selectbox[0].value == HOSTILE_PROJECT
    assert list(at.dataframe[0].value["name"]) == [HOSTILE_RUN]
    assert len(at.get("vega_lite_chart")) == 1


def test_app_shows_a_store_error_as_a_message(monkeypatch) -> None:
    at = app_test(monkeypatch, f"127.0.0.1:{free_port()}")
    assert not at.exception
    assert "UNAVAILABLE" in at.error[0].value


# -- (c) the page in a real browser ----------------------------------------------------------------


def test_page_draws_runs_and_charts_in_chromium(server: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    pytest.importorskip("playwright", reason="page-check needs `pip install playwright`")
    from pulse.stack import start_dashboard

    port = free_port()
    ui = start_dashboard(port, server=server)
    try:
        wait_for(lambda: answers(f"http://127.0.0.1:{port}/_stcore/health") or ui.poll() is not None,
                 timeout=120, what="the dashboard")
        assert ui.poll() is None, f"the dashboard exited with {ui.returncode}"
        shot = tmp_path / "dashboard.png"
        result = subprocess.run(
            [sys.executable, str(PAGE_CHECK), f"http://127.0.0.1:{port}/?project={PROJECT}", "--out", str(shot),
             "--wait-text", "alpha-run", "--wait-text", "beta-run", "--timeout", "120", "--strict"],
            capture_output=True, text=True, timeout=300)
    finally:
        ui.terminate()
        ui.wait(30)
    if os.environ.get("PULSE_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["PULSE_SCREENSHOT_DIR"]) / shot.name)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["exceptions"] == 0 and not report["error_alerts"]
    assert report["charts"] >= 2, report.get("chart_breakdown")
    assert shot.stat().st_size > 0


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False
