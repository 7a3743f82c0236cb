"""The Artifacts page and rich media in a real browser, on data the real emitter wrote through a real
`pulse up`: an artifact logged twice (v0; v1 with the alias "best") by one run and used by others; a
Table with image cells, audio, GIF (and MP4 where PyAV is installed) video, HTML, point clouds, plot.*
charts and a Plotly figure, logged by two runs that the Media page compares at one step.

Pages are checked with shared/tools/page-check (rendered, no exception, screenshot) and, for what it
does not report (which elements the page holds, a download's bytes), with Playwright driving the same
Chromium.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest
from dashboard_stack import Stack
from test_dashboard_pages import CHROMIUM, browser, keep_screenshot, page_check  # noqa: F401  (browser: a fixture)

from conftest import ROOT
from dashboard.downloads import DownloadError, download_blob
from dashboard.media_render import HTML_SANDBOX
from pulse.artifact_manifest import manifest_digest

PROJECT = "artifacts-ui"
# A logged page that tries to reach the dashboard: it must find itself cut off (an opaque origin).
LEAK_PROBE = """<html><body><p id="probe">probing</p><script>
let verdict;
try { verdict = 'reached ' + window.parent.document.title; } catch (e) { verdict = 'blocked'; }
try { localStorage.setItem('x', '1'); verdict += ' storage-open'; } catch (e) { verdict += ' storage-blocked'; }
document.getElementById('probe').textContent = verdict;
</script></body></html>"""


# -- what the real emitter writes --------------------------------------------------------------------


def trainer() -> None:
    """Run by the fixture in a fresh interpreter (a user's training script); prints what it logged."""
    import numpy as np

    import emitter

    folder = Path(os.environ["PULSE_DIR"]) / "digits"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text("x,y\n1,2\n3,4\n")
    (folder / "labels.txt").write_text("zero one two")
    report: dict = {"runs": {}, "files": {}}

    def dataset(rows: int) -> emitter.Artifact:
        artifact = emitter.Artifact("digits", type="dataset", description="handwritten digits",
                                    metadata={"rows": rows, "source": "unit-test"})
        artifact.add_file(folder / "train.csv")
        artifact.add_file(folder / "labels.txt", name="meta/labels.txt")
        return artifact

    run = emitter.init(project=PROJECT, name="prepare-data", job_type="data")
    report["runs"]["prepare-data"] = run.id
    run.log_artifact(dataset(2)).wait(60)
    (folder / "train.csv").write_text("x,y\n1,2\n3,4\n5,6\n")  # v1: one changed file
    run.log_artifact(dataset(3), aliases=["best"]).wait(60)
    report["files"] = {"train.csv": (folder / "train.csv").read_bytes().hex(),
                       "meta/labels.txt": (folder / "labels.txt").read_bytes().hex()}
    emitter.finish()

    rng = np.random.default_rng(0)
    for name, seed in (("train-model", 1), ("eval-model", 2)):
        run = emitter.init(project=PROJECT, name=name, job_type="train")
        report["runs"][name] = run.id
        run.use_artifact("digits:best" if name == "train-model" else "digits:v0")
        images = [emitter.Image(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), caption=f"digit {i}")
                  for i in range(4)]
        table = emitter.Table(columns=["id", "image", "label", "score"],
                              data=[[i, images[i], f"class-{i % 2}", round(0.9 - 0.2 * i, 2)] for i in range(4)])
        t = np.linspace(0, 0.5, 4000, endpoint=False)
        frames = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)  # T, C, H, W
        cloud = np.c_[rng.normal(size=(500, 3)), rng.integers(0, 256, (500, 3))]
        curve = emitter.Table(columns=["epoch", "loss"], data=[[e, 1.0 / (e + seed)] for e in range(10)])
        values = {
            "samples": table,
            "tone": emitter.Audio(np.sin(2 * np.pi * 440 * seed * t), sample_rate=8000, caption="A4 tone"),
            "clip": emitter.Video(frames, fps=4, format="gif"),
            "report": emitter.Html(LEAK_PROBE, inject=False),
            "cloud": emitter.Object3D(cloud),
            "labels3d": emitter.Object3D(np.c_[rng.normal(size=(200, 3)), rng.integers(0, 3, 200)]),
            "loss_curve": emitter.plot.line(curve, "epoch", "loss", title="Loss curve"),
            "confusion": emitter.plot.confusion_matrix(y_true=[0, 1, 2, 2, 1], preds=[0, 2, 2, 2, 1],
                                                       class_names=["cat", "dog", "owl"]),
        }
        try:
            import av  # noqa: F401  (MP4 needs PyAV, the media extra)

            values["movie"] = emitter.Video(frames, fps=4, format="mp4")
            report["mp4"] = True
        except ImportError:
            report["mp4"] = False
        emitter.log(values, step=5)
        if name == "train-model":
            model = emitter.Artifact("digit-model", type="model", metadata={"accuracy": 0.93})
            with model.new_file("weights.bin", mode="wb") as f:
                f.write(bytes(range(256)) * 8)
            run.log_artifact(model, aliases=["production"]).wait(60)
        stats = run.stats()
        assert stats["rejected_keys"] == {}, stats["rejected_keys"]
        emitter.finish()
    print(json.dumps(report))


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """`pulse up` holding what `trainer` logged; (stack, report)."""
    root = tmp_path_factory.mktemp("artifacts-ui")
    stack = Stack(root / "data")
    try:
        env = {**os.environ, "PULSE_SERVER": stack.address, "PULSE_DIR": str(root / "pulse"),
               "PULSE_FINISH_TIMEOUT": "60", "PULSE_SYSTEM_INTERVAL": "0", "PYTHONPATH": str(ROOT / "tests")}
        env.pop("PULSE_MODE", None)
        env.pop("PULSE_API_KEY", None)
        done = subprocess.run([sys.executable, "-c", "import test_dashboard_artifacts as t; t.trainer()"],
                              cwd=ROOT / "tests", env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        yield stack, report
    finally:
        stack.stop()


def url(stack: Stack, page: str, **params: str) -> str:
    return f"{stack.url}/{page}?{urlencode(params)}"


@contextmanager
def chromium():
    """A page in the Chromium page-check drives, for what page-check does not report."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio", "--no-first-run"])
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        finally:
            browser.close()


def grid(page, column: str):
    """The st.dataframe with a column named `column`."""
    return page.locator('[data-testid="stDataFrame"]').filter(has=page.locator("th", has_text=column))


def table_rows(grid) -> list[list[str]]:
    """The cells of an st.dataframe, from the accessible table the grid keeps beside its canvas."""
    return grid.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => Array.from(r.children).map(c => c.textContent))")


def digest_of(files: dict[str, bytes]) -> str:
    return manifest_digest([(path, hashlib.sha256(data).hexdigest(), len(data), "", "")
                            for path, data in files.items()])


# -- the Artifacts page ------------------------------------------------------------------------------


@pytest.mark.usefixtures("browser")
def test_artifacts_page_shows_versions_aliases_files_metadata_lineage_and_downloads(logged, tmp_path):
    stack, report = logged
    files = {path: bytes.fromhex(data) for path, data in report["files"].items()}
    v1 = url(stack, "artifacts", project=PROJECT, artifact="digits")
    shot = tmp_path / "artifacts-digits-v1.png"
    checked = page_check(v1, shot, "--strict", "--wait-text", "digits:v1", "--wait-text", f"Digest {digest_of(files)}",
                         "--wait-text", "Logged by prepare-data · used by train-model", "--wait-text", '"rows":3')
    assert checked["chart_breakdown"]["graphviz"] == 1 and checked["headings"][:2] == ["Artifacts", "digits:v1"]
    assert "best latest dataset" in checked["text_excerpt"] and "handwritten digits" in checked["text_excerpt"]
    with chromium() as page:
        page.goto(v1)
        files_grid, versions_grid = grid(page, "sha256"), grid(page, "aliases")
        versions_grid.locator("tbody tr").first.wait_for(state="attached", timeout=60_000)
        files_shown = table_rows(files_grid)
        assert files_shown == [[path, f"{len(data)} bytes", str(len(data)), hashlib.sha256(data).hexdigest(), ""]
                               for path, data in sorted(files.items())]
        versions = table_rows(versions_grid)
        # Version links open that version (the grid shows the text after '#').
        assert [row[:2] for row in versions] == [
            [f"artifacts?project={PROJECT}&artifact=digits&version=v1#v1", "best, latest"],
            [f"artifacts?project={PROJECT}&artifact=digits&version=v0#v0", ""]]
        assert versions[0][4] == "prepare-data"
        graph = page.locator('[data-testid="stGraphVizChart"] svg text').all_text_contents()
        assert {"prepare-data", "train-model", "eval-model", "digits:v0", "digits:v1", "digit-model:v0"} <= set(graph)
        button = page.get_by_role("button", name=f"Download labels.txt ({len(files['meta/labels.txt'])} bytes)")
        with page.expect_download(timeout=60_000) as download:
            button.click()
        assert download.value.suggested_filename == "labels.txt"
        assert Path(download.value.path()).read_bytes() == files["meta/labels.txt"]
        # A version in the graph opens its own page: the model train-model logged from digits:v1.
        page.locator('[data-testid="stGraphVizChart"] svg a', has_text="digit-model:v0").click()
        page.get_by_role("heading", name="digit-model:v0").wait_for(timeout=60_000)
        assert page.url.endswith(f"/artifacts?project={PROJECT}&artifact=digit-model&version=v0")
        page.get_by_text("Logged by train-model · used by no run").wait_for(timeout=30_000)
        assert page.get_by_text("production", exact=True).count() == 1
        metadata = page.locator('[data-testid="stJson"]').inner_text()
        assert '"accuracy":0.93' in re.sub(r"\s", "", metadata)
        page.screenshot(path=tmp_path / "artifacts-model.png", full_page=True)
        keep_screenshot(tmp_path / "artifacts-model.png")
    v0 = url(stack, "artifacts", project=PROJECT, artifact="digits", version="v0")
    page_check(v0, tmp_path / "artifacts-digits-v0.png", "--strict", "--wait-text", "digits:v0",
                         "--wait-text", "Logged by prepare-data · used by eval-model", "--wait-text", '"rows":2')


def test_download_serves_the_logged_bytes_through_the_ingest_and_refuses_what_the_project_never_stored(logged):
    stack, report = logged
    data = bytes.fromhex(report["files"]["train.csv"])
    sha = hashlib.sha256(data).hexdigest()
    assert download_blob(stack.address, "", PROJECT, sha, len(data)) == data
    with pytest.raises(DownloadError, match="NOT_FOUND"):
        download_blob(stack.address, "", "another-project", sha, len(data))  # that project never uploaded it
    with pytest.raises(DownloadError, match="not the file's"):
        download_blob(stack.address, "", PROJECT, sha, len(data) + 1)


# -- the Media page -----------------------------------------------------------------------------------

MEDIA_KEYS = ["clip", "cloud", "confusion", "labels3d", "loss_curve", "report", "samples", "tone"]
# What Plotly draws for each chart (the figure's trace types, read from the page).
PLOTLY_TRACES = {"cloud": "scatter3d", "labels3d": "scatter3d", "confusion": "heatmap", "loss_curve": "scatter"}


@pytest.mark.usefixtures("browser")
def test_media_page_draws_every_kind_and_compares_the_selected_runs_at_one_step(logged, tmp_path):
    stack, report = logged
    runs = report["runs"]
    keys = MEDIA_KEYS + (["movie"] if report["mp4"] else [])
    more = f"Show {len(keys) - 6} more keys"  # the page shows six keys, then a button for the rest
    media = url(stack, "media", project=PROJECT, runs=f"{runs['train-model']},{runs['eval-model']}")
    text = tmp_path / "media-kinds.txt"
    checked = page_check(media, tmp_path / "media-kinds.png", "--strict", "--click", more, "--wait-text", "A4 tone",
                         "--wait-text", "4 rows · click a column's header to sort", "--text-out", str(text),
                         timeout=150)
    assert checked["headings"] == ["Media", *sorted(keys)]  # the table's cells are drawn in it, not as a key
    body = text.read_text()
    starts = [body.index(f"\n{key}\n") for key in sorted(keys)]
    for key, start, end in zip(sorted(keys), starts, [*starts[1:], len(body)]):
        # Each key compares both runs side by side, under their names, at the step chosen.
        assert all(f"\n{part}\n" in body[start:end] for part in ("step 5", "train-model", "eval-model")), key
    assert checked["chart_breakdown"]["plotly"] == 2 * len(PLOTLY_TRACES)
    with chromium() as page:
        page.goto(media)
        page.get_by_role("button", name=more).click()
        page.locator("audio").nth(1).wait_for(state="attached", timeout=60_000)
        page.wait_for_function("Array.from(document.querySelectorAll('audio, video')).every(p => p.readyState >= 1)",
                               timeout=30_000)
        page.locator('[data-testid="stDataFrame"]').nth(1).locator("tbody tr").first.wait_for(state="attached",
                                                                                            timeout=60_000)
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length == {2 * len(PLOTLY_TRACES)}",
                               timeout=60_000)
        players = page.evaluate("""() => Array.from(document.querySelectorAll('audio, video')).map(
            p => [p.tagName, Math.round(p.duration * 10) / 10, p.error && p.error.message])""")
        # The browser loaded each clip: 0.5 s of audio, 6 frames at 4 fps of video.
        assert sorted(players) == [["AUDIO", 0.5, None]] * 2 + ([["VIDEO", 1.5, None]] * 2 if report["mp4"] else [])
        gifs = [page.request.get(src).body()[:6] for src in page.locator('[data-testid="stImage"] img').evaluate_all(
            "imgs => imgs.map(i => i.src)")]
        assert gifs.count(b"GIF89a") == 2
        _sandboxed_html_is_cut_off_from_the_dashboard(page)
        _charts_are_drawn_from_their_specs(page)
        _tables_sort_by_a_clicked_header(page.locator('[data-testid="stDataFrame"]').first)
        page.screenshot(path=tmp_path / "media-after-sort.png", full_page=True)
        keep_screenshot(tmp_path / "media-after-sort.png")


def _sandboxed_html_is_cut_off_from_the_dashboard(page) -> None:
    logged = [frame for frame in page.frames if frame.parent_frame and frame.parent_frame.parent_frame]
    assert len(logged) == 2  # one sandboxed frame per run, inside the frame Streamlit puts it in
    for frame in logged:
        element = frame.frame_element()
        assert element.get_attribute("sandbox") == HTML_SANDBOX and "allow-same-origin" not in HTML_SANDBOX
        frame.wait_for_function("document.getElementById('probe').textContent != 'probing'", timeout=30_000)
        # Its script ran, but could reach neither the dashboard's document nor its storage.
        assert frame.locator("#probe").text_content() == "blocked storage-blocked"


def _charts_are_drawn_from_their_specs(page) -> None:
    drawn = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => ({
        types: p._fullData.map(t => t.type), title: ((p._fullLayout.title || {}).text || '').replace(/<[^>]+>/g, ''),
        color: (p._fullData[0].marker || {}).color, x: p._fullData[0].x, z: p._fullData[0].z}))""")
    assert sorted(t for chart in drawn for t in chart["types"][:1]) == sorted(2 * list(PLOTLY_TRACES.values()))
    clouds = [chart for chart in drawn if chart["types"] == ["scatter3d"]]
    assert any(isinstance(c["color"], list) and str(c["color"][0]).startswith("rgb(") for c in clouds)  # N x 6
    assert any(isinstance(c["color"], list) and str(c["color"][0]).startswith("#") for c in clouds)  # categories
    heatmap = next(chart for chart in drawn if chart["types"] == ["heatmap"])
    assert heatmap["title"] == "Confusion Matrix Curve" and heatmap["x"] == ["cat", "dog", "owl"]
    assert heatmap["z"] == [[1, 0, 0], [0, 1, 1], [0, 0, 2]]  # rows Actual, columns Predicted
    assert "Loss curve" in [chart["title"] for chart in drawn]


def _tables_sort_by_a_clicked_header(grid) -> None:
    grid.scroll_into_view_if_needed()
    assert [row[3] for row in table_rows(grid)] == ["0.9", "0.7", "0.5", "0.3"]
    assert all(row[1].startswith("data:image/png;base64,") for row in table_rows(grid))  # the image cells
    box = grid.bounding_box()
    grid.page.mouse.click(box["x"] + box["width"] * 7 / 8, box["y"] + 17)  # the header of "score", the 4th column
    grid.page.wait_for_function("g => g.querySelector('tbody tr td:nth-child(4)').textContent == '0.3'",
                                arg=grid.element_handle(), timeout=10_000)
    assert [row[3] for row in table_rows(grid)] == ["0.3", "0.5", "0.7", "0.9"]
    assert [row[0] for row in table_rows(grid)] == ["3", "2", "1", "0"]


# -- the pieces, without a browser --------------------------------------------------------------------


def plot_doc(spec: dict, columns: list[str], data: list[list]) -> dict:
    types = ["number" if all(isinstance(row[i], (int, float)) for row in data) else "string"
             for i in range(len(columns))]
    return {"_type": "plot", "spec": spec, "table": {"_type": "table", "columns": columns, "column_types": types,
                                                     "data": data}}


def test_each_plot_chart_is_drawn_from_its_spec():
    from dashboard.media_figures import FigureError, plot_figure

    xy = [[0, 1.0, "a"], [1, 0.5, "a"], [0, 2.0, "b"], [1, 1.5, "b"]]
    line = plot_figure(plot_doc({"chart": "line", "x": "x", "y": "y", "color": "run", "title": "T", "y_label": "Y"},
                                ["x", "y", "run"], xy))
    assert [(t.type, t.name, list(t.y)) for t in line.data] == [("scatter", "a", [1.0, 0.5]),
                                                                 ("scatter", "b", [2.0, 1.5])]
    assert line.layout.title.text == "T" and line.layout.yaxis.title.text == "Y" and line.layout.xaxis.title.text == "x"
    scatter = plot_figure(plot_doc({"chart": "scatter", "x": "x", "y": "y"}, ["x", "y", "run"], xy))
    assert scatter.data[0].mode == "markers"
    assert plot_figure(plot_doc({"chart": "bar", "x": "run", "y": "y"}, ["x", "y", "run"], xy)).data[0].type == "bar"
    histogram = plot_figure(plot_doc({"chart": "histogram", "x": "y"}, ["x", "y", "run"], xy))
    assert histogram.data[0].type == "histogram" and histogram.layout.yaxis.title.text == "count"
    roc = plot_figure(plot_doc({"chart": "line", "x": "fpr", "y": "tpr", "color": "class", "preset": "roc_curve"},
                               ["class", "fpr", "tpr"], [["cat", 0, 0], ["cat", 0.5, 0.9], ["cat", 1, 1]]))
    assert roc.data[-1].name == "chance" and list(roc.layout.xaxis.range) == [-0.02, 1.02]
    matrix = plot_figure(plot_doc({"chart": "heatmap", "x": "Predicted", "y": "Actual", "value": "n"},
                                  ["Actual", "Predicted", "n"],
                                  [["dog", "dog", 3], ["dog", "cat", 1], ["cat", "dog", 0], ["cat", "cat", 2]]))
    assert list(matrix.data[0].x) == ["dog", "cat"] and matrix.data[0].z.tolist() == [[3, 1], [0, 2]]
    with pytest.raises(FigureError, match="not a column"):
        plot_figure(plot_doc({"chart": "line", "x": "x", "y": "nope"}, ["x", "y", "run"], xy))


def test_point_clouds_take_colours_from_their_4th_or_6th_columns_and_large_ones_are_sampled():
    from dashboard.media_figures import FigureError, point_cloud_figure

    rgb, note = point_cloud_figure([[0, 0, 0, 255, 0, 0], [1, 1, 1, 0, 0, 255]])
    assert list(rgb.data[0].marker.color) == ["rgb(255,0,0)", "rgb(0,0,255)"] and note == ""
    categories, _ = point_cloud_figure([[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 0]])
    colours = list(categories.data[0].marker.color)
    assert colours[0] == colours[2] != colours[1]
    plain, _ = point_cloud_figure([[0, 0, 0], [1, 1, 5]])
    assert list(plain.data[0].marker.color) == [0, 5]  # by height
    scene, note = point_cloud_figure({"type": "lidar/beta", "points": [[0, 0, 0]] * 30, "boxes": [{}], "vectors": []},
                                     max_points=10)
    assert len(scene.data[0].x) == 10 and "10 of 30 points" in note and "1 boxes" in note
    with pytest.raises(FigureError, match="point 1"):
        point_cloud_figure([[0, 0, 0], [1, 1]])


def test_logged_html_goes_into_an_escaped_srcdoc_of_a_frame_without_same_origin():
    from html.parser import HTMLParser

    from dashboard.media_render import HTML_SANDBOX, sandboxed_frame

    document = '<p title="x">"quoted" &amp; </iframe><script>parent.alert(1)</script></p>'
    frames = []

    class Frames(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "iframe":
                frames.append(dict(attrs))

    Frames().feed(sandboxed_frame(document))
    assert len(frames) == 1 and frames[0]["srcdoc"] == document  # the whole page, nothing broke out
    assert frames[0]["sandbox"] == HTML_SANDBOX and "allow-same-origin" not in HTML_SANDBOX.split()


def test_table_cells_keep_their_types_and_image_cells_become_inline_images(tmp_path):
    from dashboard.media_render import table_frame

    image = b"\x89PNG\r\n\x1a\n-not-really"
    sha = hashlib.sha256(image).hexdigest()
    (tmp_path / "cell.png").write_bytes(image)
    ref = {"_media": "image", "sha256": sha, "mime": "image/png"}
    audio = {"_media": "audio", "sha256": "0" * 64, "mime": "audio/wav", "caption": "hello"}
    frame, config = table_frame(["n", "ok", "img", "sound", "meta", "mixed"], ["number", "bool", "image", "audio",
                                                                              "json", "number"],
                                [[1, True, ref, audio, {"a": [1]}, 2], [2.5, None, None, None, None, "x"]],
                                {sha: (tmp_path / "cell.png").as_uri()})
    assert frame["n"].tolist() == [1.0, 2.5] and str(frame["ok"].dtype) == "boolean"
    assert frame["img"][0].startswith("data:image/png;base64,") and frame["img"][1] is None and "img" in config
    assert frame["sound"].tolist() == ["audio: hello", None] and frame["meta"].tolist() == ['{"a": [1]}', None]
    assert frame["mixed"].tolist() == ["2", "x"]  # a column that breaks its type is shown as text, not lost


def test_lineage_graph_names_runs_and_versions_and_no_user_text_breaks_out_of_its_labels():
    from dashboard.artifacts import lineage_dot

    rows = [{"project": "p", "name": "data", "version": 0, "direction": "output", "run_project": "p", "run_id": "r1",
             "run_name": 'evil" ]; x -> y [label="\\', "state": "finished", "type": "dataset"},
            {"project": "p", "name": "data", "version": 0, "direction": "input", "run_project": "p", "run_id": "r2",
             "run_name": "train\nline", "state": "running", "type": "dataset"}]
    dot = lineage_dot(rows, ("p", "data", 0), page_project="p")
    assert 'label="evil\\" ]; x -> y [label=\\"\\\\\\nfinished"' in dot and 'label="train\\nline\\nrunning"' in dot
    edges = re.findall(r"^  (\w+) -> (\w+);$", dot, re.MULTILINE)
    assert len(edges) == 2 and edges[0][1] == edges[1][0]  # producer -> version -> consumer
    assert 'fillcolor="#ffe9b3"' in dot  # the version the page shows
    assert 'URL="run?project=p&run=r2"' in dot and 'URL="artifacts?project=p&artifact=data&version=v0"' in dot
