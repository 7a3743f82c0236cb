"""The workspace on what the real emitter writes: the run page, the Charts page's x-axes, grouping and
paging, the Runs page's columns, editing runs through the ingest's Runs service, console capture,
and the pages at desktop and phone size in Chromium.

The runs come from trainer subprocesses (test_dashboard_seed.train_workspace, train_failing) that
run a W&B-style script against the shared `pulse up`: watch(log_graph=True) on a torch model,
define_metric, a group of runs, a 20,000-key run, an in-process sweep and a run that raises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import grpc
import pytest
import torch
from dashboard_stack import shared_stack
from test_dashboard_pages import CHROMIUM, app, browser, names, page_check, rows, specs, titles  # noqa: F401
from test_dashboard_seed import FAIL_MESSAGE, GROUP_SPIKE_STEP, WIDE_KEYS, RunBatches, stream

from conftest import ROOT, Ingest, run_script, wait_for
from dashboard.edits import EditError, Editor
from pulse.client import QueryClient
from pulse.v1 import admin_pb2, admin_pb2_grpc
from pulse.v1 import telemetry_pb2 as pb

PHONE = ("--width", "390", "--height", "844")


@pytest.fixture(scope="module")
def seeded_stack(request, tmp_path_factory):
    return shared_stack(request, tmp_path_factory)


def query(stack, sql: str, **parameters) -> list[dict]:
    client = QueryClient(stack.address, api_key="")
    try:
        return client.query(sql, parameters).to_pylist()
    finally:
        client.close()


def chart(at, title: str):
    return next(c for c in at.get("vega_lite_chart") if json.loads(c.proto.spec).get("title", {}).get("text") == title)


def x_title(element) -> str:
    return json.loads(element.proto.spec)["layer"][0]["encoding"]["x"]["title"]


# -- the run page ----------------------------------------------------------------------------------------------


def test_a_failed_run_shows_its_reason_traceback_and_console(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    run_id = seeded.ws_runs["failing-run"]
    at = app(monkeypatch, stack.address, "run", project=seeded.workspace, run=run_id)
    assert at.header[0].value == "failing-run"
    assert FAIL_MESSAGE in at.error[0].value.replace("\\", "") and "exit code 1" in at.error[0].value
    traceback, console = [c.value for c in at.code]
    assert traceback.startswith("Traceback (most recent call last)") and "raise RuntimeError(FAIL_MESSAGE)" in traceback
    assert traceback.rstrip().endswith(f"RuntimeError: {FAIL_MESSAGE}")
    # the console as the user saw it: stdout and stderr, in order, the traceback included
    assert "step 7: loss 128.0\nwarning: the loss is exploding\nTraceback" in console
    assert [s.value for s in at.subheader][:4] == ["Environment", "Config", "Summary", "Charts"]


def test_the_run_page_says_how_and_where_the_run_ran(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "run", project=seeded.workspace, run=seeded.ws_runs["watched-mlp"])
    environment = dict(zip(at.dataframe[0].value.iloc[:, 0], at.dataframe[0].value["value"]))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit, _, state = environment["git"].partition(" ")
    assert len(commit) == 12 and head and ("dirty" in state or "clean" in state)
    assert environment["torch"] == torch.__version__
    assert environment["python"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["command"].startswith(sys.executable) and environment["cwd"].endswith("tests")
    assert any("A small MLP, watched." in m.value.replace("\\", "") for m in at.markdown)
    config = at.dataframe[1].value
    assert dict(zip(config["key"], config["value"]))["model.hidden"] == "16"  # nested config, flattened
    assert not at.error and not at.warning


def test_a_20000_key_run_has_a_searchable_summary_and_paged_charts(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "run", project=seeded.workspace, run=seeded.ws_runs["wide-run"])
    assert f"{WIDE_KEYS + 1:,} of {WIDE_KEYS + 1:,} entries" in [c.value for c in at.caption]
    at.text_input(key="run:summary:search").input("probe/0001").run()
    assert f"10 of {WIDE_KEYS + 1:,} entries" in [c.value for c in at.caption]
    # its charts: the user's train/ first, the 20,000 probes a page at a time, never silently cut
    assert titles(at)[0] == "train/loss" and len(titles(at)) == 24
    assert f"Showing 24 of {WIDE_KEYS + 1} metrics." in [c.value for c in at.caption]
    at.button(key="run:user:more").click().run()
    assert len(titles(at)) == 48


# -- the Charts page --------------------------------------------------------------------------------------------


def test_charts_put_the_users_metrics_first_and_draw_against_step_metric(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, "charts", project=seeded.workspace, run=seeded.ws_runs["watched-mlp"])
    assert titles(at) == ["epoch", "train/acc", "train/loss", "val/acc", "val/loss", "test/accuracy"]
    assert at.subheader[-1].value == "Gradient and weight norms · watch() (8)"  # closed: none drawn
    assert x_title(chart(at, "val/loss")) == "epoch"  # define_metric("val/*", step_metric="epoch")
    assert x_title(chart(at, "train/loss")) == "step"
    [single] = [layer for layer in json.loads(chart(at, "test/accuracy").proto.spec)["layer"]
                if layer["mark"]["type"] == "point"]  # one value: a point, not an empty line
    assert single["mark"]["filled"] is True
    assert all(spec["layer"][-1]["encoding"]["color"].get("legend", "") is None for spec in specs(at))
    assert len(at.get("html")) >= 2  # the CSS and the page's one legend
    at.toggle(key="charts:show-watch").set_value(True).run()
    assert sum(t.startswith(("grad_norm/", "param_norm/")) for t in titles(at)) == 8
    at = app(monkeypatch, stack.address, "charts", project=seeded.workspace, run=seeded.ws_runs["watched-mlp"],
             x="metric:train/acc", keys="^train/loss$")
    assert x_title(at.get("vega_lite_chart")[0]) == "train/acc"


def test_grouped_runs_draw_a_mean_and_a_band_that_keep_a_one_step_spike(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    scan = [seeded.ws_runs[f"scan-lr{lr}"] for lr in (0.1, 0.03, 0.01)]
    at = app(monkeypatch, stack.address, "charts", project=seeded.workspace, runs=",".join(scan), group="group",
             keys="^train/loss$")
    drawn = rows(at.get("vega_lite_chart")[0])
    assert {r["series"] for r in drawn} == {"group: lr-scan"}
    spike = [r for r in drawn if r.get("step") == GROUP_SPIKE_STEP and "runs" in r][0]
    assert spike["max"] == 50.0 and spike["runs"] == 3 and 15 < spike["last"] < 20  # the mean of three
    at = app(monkeypatch, stack.address, "charts", project=seeded.workspace, runs=",".join(scan), band="0",
             keys="^train/loss$")
    spec = specs(at)[0]
    assert "area" not in [layer["mark"]["type"] for layer in spec["layer"]]
    assert max(r["y"] for r in rows(at.get("vega_lite_chart")[0]) if r.get("y") is not None) == 50.0


# -- the Runs page -----------------------------------------------------------------------------------------------


def test_runs_page_shows_the_metrics_that_matter_with_a_20000_key_run_in_the_project(monkeypatch, seeded_stack):
    stack, seeded = seeded_stack
    at = app(monkeypatch, stack.address, project=seeded.workspace)
    table = at.dataframe[0].value
    columns = list(table.columns)
    assert columns[columns.index("job_type") + 1:][:3] == ["val/loss", "train/loss", "val_loss"]  # goal, loss...
    assert not [c for c in columns if c.startswith(("grad_norm/", "param_norm/", "gradient_health"))]
    failed = table[names(table) == "failing-run"].iloc[0]
    assert failed["state"] == "failed" and failed["error"] == f"RuntimeError: {FAIL_MESSAGE}"
    assert set(table.loc[names(table).str.startswith("scan-"), "group"]) == {"lr-scan"}
    at = app(monkeypatch, stack.address, project=seeded.workspace, sort="summary.probe/00007", order="asc")
    assert list(at.dataframe[0].value.columns)[2] == "probe/00007"  # the sort column in view


# -- editing through the ingest ----------------------------------------------------------------------------------


def test_rename_retag_renote_delete_and_restore_a_run_from_its_page(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    project, run_id = seeded.workspace, seeded.ws_runs["scan-lr0.03"]
    at = app(monkeypatch, stack.address, "run", project=project, run=run_id)
    next(t for t in at.text_input if t.label == "Name").input("renamed-scan")
    next(m for m in at.multiselect if m.label == "Tags").set_value(["keep", "lr-scan"])
    next(t for t in at.text_area if t.label == "Notes").input("edited from the run page")
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception and not at.error
    [row] = query(stack, "SELECT name, tags, notes, deleted FROM runs FINAL WHERE run_id = {r:String}", r=run_id)
    assert row == {"name": "renamed-scan", "tags": ["keep", "lr-scan"], "notes": "edited from the run page",
                   "deleted": 0}
    at = app(monkeypatch, stack.address, "run", project=project, run=run_id)
    assert at.header[0].value == "renamed-scan"
    next(b for b in at.button if b.label == "Delete this run").click().run()
    at = app(monkeypatch, stack.address, project=project)
    assert "renamed-scan" not in set(names(at.dataframe[0].value))  # hidden everywhere...
    at = app(monkeypatch, stack.address, "charts", project=project)
    assert run_id not in at.sidebar.multiselect[0].options
    at = app(monkeypatch, stack.address, project=project, deleted="1")
    assert list(names(at.dataframe[0].value)) == ["renamed-scan"]  # ...but kept, and listed among the deleted
    at = app(monkeypatch, stack.address, "run", project=project, run=run_id)
    assert "deleted" in at.warning[0].value
    next(b for b in at.button if b.label == "Restore this run").click().run()
    assert query(stack, "SELECT deleted FROM runs FINAL WHERE run_id = {r:String}", r=run_id) == [{"deleted": 0}]


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    server = Ingest(tmp_path_factory.mktemp("secured") / "data", "--auth").start()
    yield server
    server.stop()


def test_run_edits_need_a_key_that_may_write_the_project(secured) -> None:
    admin = (secured.data_dir / "admin-key").read_text().strip()
    with grpc.insecure_channel(secured.address) as channel:
        keys = admin_pb2_grpc.AdminStub(channel)
        auth = (("authorization", f"Bearer {admin}"),)

        def key(**scope) -> str:
            return keys.CreateKey(admin_pb2.CreateKeyRequest(**scope), metadata=auth).key

        writer, reader, other = key(project="edits"), key(project="edits", read_only=True), key(project="elsewhere")
    run = RunBatches("edits", "to-edit", 1_700_000_000_000_000)
    with grpc.insecure_channel(secured.address) as channel:
        call = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=pb.Batch.SerializeToString,
                                     response_deserializer=pb.Ack.FromString)
        list(call(iter(run.batches), metadata=(("authorization", f"Bearer {writer}"),), timeout=60))
    with pytest.raises(EditError, match="UNAUTHENTICATED"):
        Editor(secured.address).delete("edits", run.run_id)
    with pytest.raises(EditError, match="PERMISSION_DENIED: key .* is read-only"):
        Editor(secured.address, reader).update("edits", run.run_id, name="x")
    with pytest.raises(EditError, match="PERMISSION_DENIED: key .* is for project 'elsewhere'"):
        Editor(secured.address, other).delete("edits", run.run_id)
    with pytest.raises(EditError, match="NOT_FOUND"):
        Editor(secured.address, writer).delete("edits", "no-such-run")
    with pytest.raises(EditError, match="INVALID_ARGUMENT: name is empty"):
        Editor(secured.address, writer).update("edits", run.run_id, name=" ")
    edited = Editor(secured.address, writer).update("edits", run.run_id, tags=["a", "a", "b"])
    assert list(edited.tags) == ["a", "b"] and edited.name == "to-edit"
    assert Editor(secured.address, writer).delete("edits", run.run_id).deleted
    client = QueryClient(secured.address, api_key=admin)
    try:
        stored = client.query("SELECT deleted FROM runs FINAL WHERE run_id = {r:String}", {"r": run.run_id})
    finally:
        client.close()
    assert stored.to_pylist() == [{"deleted": 1}]


def test_an_edit_of_a_live_run_survives_its_later_updates(seeded_stack) -> None:
    from dashboard_stack import LiveRun

    stack, seeded = seeded_stack
    live = LiveRun(stack.address, f"{seeded.workspace}-live", name="live-edit")
    try:
        live.log(range(2))  # the run is in the store
        Editor(stack.address).update(f"{seeded.workspace}-live", live.run_id, name="edited-live", notes="n")
        live.log(range(2, 5))  # heartbeats and points: the registry writes new row versions
        wait_for(lambda: query(stack, "SELECT count() AS n FROM runs WHERE run_id = {r:String}", r=live.run_id)[0]["n"]
                 >= 3, timeout=30, what="later row versions of the live run")
    finally:
        live.finish()
    [row] = query(stack, "SELECT name, notes, state FROM runs FINAL WHERE run_id = {r:String}", r=live.run_id)
    assert row == {"name": "edited-live", "notes": "n", "state": "finished"}


def test_a_sweep_is_stopped_from_the_sweeps_page(monkeypatch, seeded_stack) -> None:
    stack, seeded = seeded_stack
    sweep = json.loads(run_script(f"""
        import json
        import emitter
        print(json.dumps(emitter.sweep({{"method": "random", "metric": {{"name": "loss"}},
                                        "parameters": {{"lr": {{"min": 0.001, "max": 0.1}}}}}},
                                       project="{seeded.workspace}-stop")))
    """, env={"PULSE_SERVER": stack.address}).stdout.strip().splitlines()[-1])
    at = app(monkeypatch, stack.address, "sweeps", project=f"{seeded.workspace}-stop")
    next(b for b in at.button if b.label == "Stop sweep").click().run()
    assert not at.exception and not at.error
    [row] = query(stack, "SELECT toString(state) AS state FROM sweeps FINAL WHERE sweep_id = {s:String}", s=sweep)
    assert row["state"] in ("stopped", "finished")
    at = app(monkeypatch, stack.address, "sweeps", project=f"{seeded.workspace}-stop")
    assert not [b for b in at.button if b.label == "Stop sweep"]  # nothing left to stop


# -- console capture --------------------------------------------------------------------------------------------


def test_console_capture_tees_and_can_be_turned_off(seeded_stack, tmp_path) -> None:
    stack, seeded = seeded_stack
    env = {"PULSE_SERVER": stack.address, "PULSE_DIR": str(tmp_path), "PULSE_PROJECT": f"{seeded.workspace}-console",
           "PULSE_SYSTEM_INTERVAL": "0"}
    code = """
        import json, sys
        import emitter
        on = emitter.init(name="on")
        print("seen by the user"); print("x" * 10000); sys.stdout.write("no newline at the end")
        emitter.finish()
        print("after finish")
        off = emitter.init(name="off", settings={"console": "off"})
        print("not captured")
        emitter.finish()
        print(json.dumps([on.id, off.id]))
    """
    done = run_script(code, env=env)
    assert done.returncode == 0, done.stderr
    assert "seen by the user\n" in done.stdout and "after finish" in done.stdout  # the user still sees it all
    on, off = json.loads(done.stdout.strip().splitlines()[-1])
    lines = query(stack, "SELECT run_id, stream, line_no, text FROM logs FINAL "
                  "WHERE run_id IN ({a:String}, {b:String}) ORDER BY line_no", a=on, b=off)
    assert [(r["run_id"], r["line_no"]) for r in lines] == [(on, 1), (on, 2), (on, 3)]
    assert lines[0]["text"] == "seen by the user" and lines[1]["text"].endswith("…[cut]") and \
        len(lines[1]["text"]) == 4000 and lines[2]["text"] == "no newline at the end"
    done = run_script(code, env={**env, "PULSE_CONSOLE": "off"})
    on = json.loads(done.stdout.strip().splitlines()[-1])[0]
    assert query(stack, "SELECT count() AS n FROM logs WHERE run_id = {r:String}", r=on) == [{"n": 0}]


def test_the_ingest_refuses_bad_console_lines_one_by_one(seeded_stack) -> None:
    stack, seeded = seeded_stack
    run = RunBatches(f"{seeded.workspace}-console", "raw", 1_700_000_000_000_000)
    run.batches[0].console.extend([
        pb.ConsoleLine(ts_us=1_700_000_000_000_001, stream="stdout", line_no=1, text="kept"),
        pb.ConsoleLine(ts_us=1_700_000_000_000_002, stream="stdin", line_no=2, text="x"),
        pb.ConsoleLine(ts_us=1_700_000_000_000_003, stream="stderr", line_no=0, text="x"),
        pb.ConsoleLine(ts_us=1_700_000_000_000_004, stream="stderr", line_no=3, text="é" * 9000)])
    [ack] = stream(stack.address, run.batches)
    assert [r.reason for r in ack.rejected] == ["stream must be one of ['stderr', 'stdout']", "line_no counts from 1",
                                                "line is 18000 bytes long; the limit is 16384"]
    assert query(stack, "SELECT text FROM logs WHERE run_id = {r:String}", r=run.run_id) == [{"text": "kept"}]


# -- in Chromium, at desktop and phone size ----------------------------------------------------------------------


def _pages(seeded) -> dict[str, tuple[dict, str]]:
    ws = seeded.ws_runs
    return {"run": ({"project": seeded.workspace, "run": ws["failing-run"]}, "Console output"),
            "runs": ({"project": seeded.workspace}, "Runs 1"),
            "charts": ({"project": seeded.workspace, "runs": ",".join([ws["watched-mlp"], ws["scan-lr0.1"]])},
                       "val/loss")}


@pytest.mark.usefixtures("browser")
@pytest.mark.parametrize("page", ["run", "runs", "charts"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_workspace_pages_render_in_chromium(seeded_stack, tmp_path: Path, page: str, size: str) -> None:
    stack, seeded = seeded_stack
    params, text = _pages(seeded)[page]
    url = f"{stack.url}/{page}?{urlencode(params)}"
    report = page_check(url, tmp_path / f"workspace-{page}-{size}.png", "--wait-text", text,
                        *(PHONE if size == "phone" else ()))
    assert report["charts"] >= {"run": 1, "runs": 0, "charts": 4}[page]
    if page == "run":
        assert [a for a in report["error_alerts"] if FAIL_MESSAGE not in a] == []


@pytest.mark.usefixtures("browser")
def test_phone_pages_fit_the_screen_with_big_enough_tap_targets(seeded_stack) -> None:
    """At 390×844: no horizontal page scroll, and every visible button, input and link at least 40 px tall."""
    from playwright.sync_api import sync_playwright

    stack, seeded = seeded_stack
    measure = """() => {
        const main = document.querySelector('[data-testid="stMain"]') || document.body;
        const small = [];
        for (const el of document.querySelectorAll('[data-testid="stMainBlockContainer"] button, '
                + '[data-testid="stMainBlockContainer"] input, [data-testid="stMainBlockContainer"] textarea, '
                + '[data-testid="stPageLink"] a, .pulse-chip')) {
            const box = el.getBoundingClientRect();
            const hidden = box.width === 0 || getComputedStyle(el).visibility === 'hidden' || el.type === 'checkbox'
                || el.closest('[data-testid="stDataFrame"]') || el.closest('[data-testid="stTooltipIcon"]')
                || el.closest('[data-testid="stExpanderDetails"]');
            if (!hidden && box.height < 40) small.push((el.innerText || el.getAttribute('aria-label') || el.tagName)
                                                       .slice(0, 40) + ' ' + Math.round(box.height));
        }
        return {page: document.documentElement.scrollWidth, main: main.scrollWidth, width: window.innerWidth, small};
    }"""
    with sync_playwright() as pw:
        browser_ = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            view = browser_.new_page(viewport={"width": 390, "height": 844})
            for page, (params, text) in _pages(seeded).items():
                view.goto(f"{stack.url}/{page}?{urlencode(params)}")
                view.get_by_text(text).first.wait_for(timeout=90_000)
                view.wait_for_timeout(1500)
                found = view.evaluate(measure)
                assert found["page"] <= found["width"] and found["main"] <= found["width"], (page, found)
                assert found["small"] == [], (page, found["small"])
        finally:
            browser_.close()

