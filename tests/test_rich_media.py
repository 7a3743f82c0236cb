"""Rich media: every kind logged by the real emitter is stored by the real ingest and decodes back to
what was logged (audio samples, video frames, HTML text, point clouds, table rows and their media
cells, plot specs); the ingest refuses what the shared contract (pulse/media_schema.py) does not list."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import wave

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageSequence
from test_ingest_validation import batch, stream
from test_media import blob, media_rows, pixels

import emitter
from emitter.media import encode_png
from pulse.media_schema import (
    CELL_KEY_PREFIX,
    MAX_MEDIA_BYTES,
    PLOT_MIME,
    POINTS_MIME,
    TABLE_MIME,
    dumps,
    media_ref,
    table_refs,
)
from pulse.v1 import telemetry_pb2 as pb


def project() -> str:
    return f"rich-{uuid.uuid4().hex[:8]}"


def logged(ingest, values: dict, steps: int = 1) -> tuple[emitter.Run, dict[str, dict]]:
    """Log `values` in a fresh run; its media rows by key (first index of each key)."""
    run = emitter.init(project=project())
    emitter.log(values)
    emitter.finish()
    assert run.stats()["rejected_keys"] == {}
    rows = {}
    for row in media_rows(ingest, run.id):
        rows.setdefault(row["key"], row)
    return run, rows


def doc(row: dict) -> dict:
    return json.loads(blob(row["uri"]))


def wav_samples(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as w:
        dtype = {2: np.int16, 4: np.int32}[w.getsampwidth()]
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype).reshape(-1, w.getnchannels())
        return frames, w.getframerate()


def test_pillow_encodes_the_png_as_pillow_itself_does():
    rgb = np.random.default_rng(3).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    ours = encode_png(rgb)
    theirs = io.BytesIO()
    PILImage.fromarray(rgb).save(theirs, format="PNG", compress_level=6)
    assert ours == theirs.getvalue() and np.array_equal(pixels(ours), rgb)
    assert (emitter.Image(rgb).width, emitter.Image(rgb).height) == (7, 9)


def test_audio_round_trips_as_wav_and_flac_samples(emitter_env, tmp_path):
    soundfile = pytest.importorskip("soundfile")
    t = np.linspace(0, 1, 8000, endpoint=False)
    mono = 0.8 * np.sin(2 * np.pi * 440 * t)
    stereo = np.random.default_rng(0).integers(-32768, 32767, (4000, 2), dtype=np.int16)
    path = tmp_path / "clip.wav"
    soundfile.write(path, stereo, 22050)
    run, rows = logged(emitter_env, {
        "mono": emitter.Audio(mono, sample_rate=8000, caption="A4"),
        "stereo": emitter.Audio(stereo, sample_rate=22050),
        "flac": emitter.Audio(mono, sample_rate=8000, format="flac"),
        "file": emitter.Audio(path)})
    samples, rate = wav_samples(blob(rows["mono"]["uri"]))
    assert rate == 8000 and samples.shape == (8000, 1)
    assert np.array_equal(samples[:, 0], np.rint(mono * 32767).astype(np.int16))  # 16-bit PCM, as W&B stores
    assert np.abs(samples[:, 0] / 32767 - mono).max() <= 0.5 / 32767
    assert (rows["mono"]["kind"], rows["mono"]["mime"], rows["mono"]["caption"]) == ("audio", "audio/wav", "A4")
    samples, rate = wav_samples(blob(rows["stereo"]["uri"]))
    assert rate == 22050 and np.array_equal(samples, stereo)  # int16 stored exactly
    flac, rate = soundfile.read(io.BytesIO(blob(rows["flac"]["uri"])), dtype="int16")
    assert rows["flac"]["mime"] == "audio/flac" and rate == 8000
    assert np.array_equal(flac, np.rint(mono * 32767).astype(np.int16))  # lossless
    assert blob(rows["file"]["uri"]) == path.read_bytes()


def test_video_round_trips_gif_exactly_and_mp4_within_codec_tolerance(emitter_env, tmp_path):
    av = pytest.importorskip("av")
    rng = np.random.default_rng(1)
    palette = np.array([[0, 0, 0], [255, 0, 0], [0, 128, 255], [250, 250, 250]], np.uint8)
    few = palette[rng.integers(0, 4, (6, 12, 16))].transpose(0, 3, 1, 2)  # T x C x H x W, 4 colours
    y, x = np.mgrid[0:32, 0:48]
    smooth = np.stack([np.stack([(x * 5 + i * 8) % 256, (y * 7) % 256, np.full_like(x, 40 * i)])
                       for i in range(6)]).astype(np.uint8)
    clips = rng.integers(0, 256, (3, 2, 1, 4, 6), dtype=np.uint8)  # B x T x C x H x W
    path = tmp_path / "clip.mp4"
    path.write_bytes(emitter.Video(smooth, fps=5, format="mp4")._data)
    run, rows = logged(emitter_env, {
        "gif": emitter.Video(few, fps=4, caption="palette"),
        "mp4": emitter.Video(smooth, fps=5, format="mp4"),
        "webm": emitter.Video(smooth, fps=5, format="webm"),
        "grid": emitter.Video(clips, fps=2),
        "file": emitter.Video(path)})

    gif = PILImage.open(io.BytesIO(blob(rows["gif"]["uri"])))
    frames = np.stack([np.array(f.convert("RGB")) for f in ImageSequence.Iterator(gif)])
    assert np.array_equal(frames, few.transpose(0, 2, 3, 1))  # at most 256 colours a frame: exact
    assert gif.info["duration"] == 250 and (rows["gif"]["width"], rows["gif"]["height"]) == (16, 12)
    assert (rows["gif"]["kind"], rows["gif"]["mime"], rows["gif"]["caption"]) == ("video", "image/gif", "palette")

    for key, mime in (("mp4", "video/mp4"), ("webm", "video/webm")):
        with av.open(io.BytesIO(blob(rows[key]["uri"]))) as container:
            stream_ = container.streams.video[0]
            decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream_)])
            assert stream_.average_rate == 5
        error = np.abs(decoded.astype(int) - smooth.transpose(0, 2, 3, 1))
        assert decoded.shape == (6, 32, 48, 3) and rows[key]["mime"] == mime
        assert error.mean() < 4 and np.percentile(error, 99) < 40, (key, error.mean())  # lossy yuv420p
    grid = PILImage.open(io.BytesIO(blob(rows["grid"]["uri"])))
    assert grid.size == (12, 8) and grid.n_frames == 2  # 3 clips padded to 4, tiled 2 x 2 as W&B tiles them
    assert blob(rows["file"]["uri"]) == path.read_bytes() and rows["file"]["mime"] == "video/mp4"


def test_media_past_the_limit_fail_at_the_call_with_their_size(tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (MAX_MEDIA_BYTES + 1))
    with pytest.raises(ValueError, match="is 25,000,001 bytes as video/mp4; the limit is 25,000,000"):
        emitter.Video(big)
    with pytest.raises(ValueError, match="the limit is 25,000,000"):
        emitter.Audio(np.zeros(MAX_MEDIA_BYTES // 2 + 1), sample_rate=16000)
    with pytest.raises(ValueError, match="must end with one of"):
        emitter.Video(tmp_path / "clip.avi")
    with pytest.raises(ValueError, match="T x C x H x W"):
        emitter.Video(np.zeros((4, 5, 8, 8)))
    with pytest.raises(ValueError, match="sample_rate"):
        emitter.Audio(np.zeros(10))
    with pytest.raises(ValueError, match="N x 3"):
        emitter.Object3D(np.zeros((10, 5)))


def test_html_is_stored_as_given_or_with_its_head_injected(emitter_env, tmp_path):
    page = "<html><body><h1>épopée</h1><script>1</script></body></html>"
    path = tmp_path / "report.html"
    path.write_text("<p>from a file</p>", encoding="utf-8")
    run, rows = logged(emitter_env, {"raw": emitter.Html(page, inject=False), "injected": emitter.Html(page),
                                     "file": emitter.Html(str(path), inject=False)})
    assert blob(rows["raw"]["uri"]).decode("utf-8") == page
    injected = blob(rows["injected"]["uri"]).decode("utf-8")
    assert injected.startswith("<html><head><meta charset=\"utf-8\">") and injected.endswith(page[6:])
    assert blob(rows["file"]["uri"]) == path.read_bytes()
    assert {r["kind"] for r in rows.values()} == {"html"} and {r["mime"] for r in rows.values()} == {"text/html"}


def test_point_clouds_round_trip_exactly_in_wandb_pts_json(emitter_env, tmp_path):
    rng = np.random.default_rng(2)
    xyz = rng.normal(size=(500, 3)).astype(np.float32)
    labelled = np.c_[rng.normal(size=(300, 3)), rng.integers(1, 15, 300)]
    coloured = np.c_[rng.normal(size=(200, 3)), rng.integers(0, 256, (200, 3))]
    obj = tmp_path / "cube.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    boxes = [{"corners": [[0, 0, 0]] * 8, "label": "car", "color": [255, 0, 0]}]
    run, rows = logged(emitter_env, {
        "xyz": emitter.Object3D(xyz), "labelled": emitter.Object3D(labelled, caption="parts"),
        "coloured": emitter.Object3D.from_numpy(coloured), "mesh": emitter.Object3D(obj),
        "scene": emitter.Object3D.from_point_cloud(points=xyz[:10], boxes=boxes)})
    for key, points in (("xyz", xyz), ("labelled", labelled), ("coloured", coloured)):
        assert (rows[key]["kind"], rows[key]["mime"]) == ("object3d", POINTS_MIME)
        stored = np.array(doc(rows[key]))
        assert stored.shape == points.shape and np.array_equal(stored, points.astype(np.float64)), key
    assert rows["labelled"]["caption"] == "parts"
    assert (blob(rows["mesh"]["uri"]), rows["mesh"]["mime"]) == (obj.read_bytes(), "model/obj")
    scene = doc(rows["scene"])
    assert scene["type"] == "lidar/beta" and scene["boxes"] == boxes
    assert np.array_equal(np.array(scene["points"]), xyz[:10].astype(np.float64))


def test_table_rows_and_their_media_cells_round_trip(emitter_env):
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 256, (4, 5, 3), dtype=np.uint8) for _ in range(3)]
    sound = emitter.Audio(np.zeros((100, 1), np.int16), sample_rate=8000)
    shared = emitter.Image(images[0], caption="first")
    table = emitter.Table(columns=["id", "image", "label", "score", "extra"])
    table.add_data(0, shared, "cat", 0.5, {"k": [1, 2]})
    table.add_data(np.int64(1), emitter.Image(images[1]), "dog", np.float32(0.25), None)
    table.add_data(2, shared, None, float("nan"), [True])
    table.add_column("sound", [sound, None, sound], optional=True)
    with_df = emitter.Table(dataframe=table.get_dataframe()[["id", "label"]])
    run = emitter.init(project=project())
    emitter.log({"preds": table, "from_df": with_df})
    table.add_data(3, emitter.Image(images[2]), "owl", 1.0, None, None)  # after log(): the next log's row
    emitter.finish()
    assert run.stats()["rejected_keys"] == {}

    rows = media_rows(emitter_env, run.id)
    by_key = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row)
    assert set(by_key) == {"preds", "from_df", CELL_KEY_PREFIX + "preds"}
    [preds] = by_key["preds"]
    assert (preds["kind"], preds["mime"]) == ("table", TABLE_MIME)
    stored = doc(preds)
    assert stored["columns"] == ["id", "image", "label", "score", "extra", "sound"]
    assert stored["column_types"] == ["number", "image", "string", "number", "json", "audio"]
    assert [r[0] for r in stored["data"]] == [0, 1, 2]
    assert [r[2:5] for r in stored["data"][:2]] == [["cat", 0.5, {"k": [1, 2]}], ["dog", 0.25, None]]
    assert np.isnan(stored["data"][2][3]) and stored["data"][2][2] is None
    refs = table_refs(stored)
    assert [r["_media"] for r in refs] == ["image", "audio", "image", "image", "audio"]
    assert refs[0] == refs[3] == media_ref("image", shared.sha256, "image/png", 5, 4, "first")
    cells = {r["sha256"].decode(): r for r in by_key[CELL_KEY_PREFIX + "preds"]}
    assert len(by_key[CELL_KEY_PREFIX + "preds"]) == 3  # distinct media objects, each stored once
    for ref, expected in ((refs[0], images[0]), (refs[2], images[1])):
        assert np.array_equal(pixels(blob(cells[ref["sha256"]]["uri"])), expected)
    assert blob(cells[refs[1]["sha256"]]["uri"]) == sound._data
    assert doc(by_key["from_df"][0])["data"] == [[0, "cat"], [1, "dog"], [2, None]]


def test_table_api_refuses_what_it_cannot_store():
    table = emitter.Table(columns=["a", "b"], data=[[1, "x"]])
    assert table.get_column("a") == [1] and list(table.get_column("b", convert_to="numpy")) == ["x"]
    with pytest.raises(TypeError, match="column 'a' holds number values, not string"):
        table.add_data("one", "y")
    with pytest.raises(ValueError, match="has 2 cells"):
        table.add_data(1)
    with pytest.raises(TypeError, match="is not JSON or media"):
        table.add_data(2, object())
    with pytest.raises(TypeError, match="not optional"):
        emitter.Table(columns=["a"], optional=False).add_data(None)
    with pytest.raises(TypeError, match="Histogram.* is not a type a table column may have"):
        emitter.Table(columns=["a"], dtype=emitter.Histogram)
    mixed = emitter.Table(columns=["a"], allow_mixed_types=True)
    mixed.add_data(1)
    mixed.add_data("one")
    assert emitter.Table(columns=["i"], dtype=[emitter.Image]).columns == ["i"]


def test_plot_presets_store_their_table_and_chart_spec(emitter_env):
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 3, 200)
    probas = rng.dirichlet(np.ones(3), 200)
    probas[np.arange(200), y_true] += 0.5
    points = emitter.Table(columns=["step", "loss", "run"], data=[[i, 1 / (i + 1), "a" if i % 2 else "b"]
                                                                  for i in range(10)])
    charts = {
        "line": emitter.plot.line(points, "step", "loss", stroke="run", title="Loss"),
        "scatter": emitter.plot.scatter(points, "step", "loss"),
        "bar": emitter.plot.bar(points, "run", "loss", title="Bars"),
        "hist": emitter.plot.histogram(points, "loss"),
        "series": emitter.plot.line_series([0, 1, 2], [[1, 2, 3], [3, 2, 1]], keys=["up", "down"], xname="t"),
        "cm": emitter.plot.confusion_matrix(y_true=[0, 1, 1, 2], preds=[0, 1, 2, 2], class_names=["a", "b", "c"]),
        "cm_probs": emitter.plot.confusion_matrix(probs=probas, y_true=y_true),
        "pr": emitter.plot.pr_curve(y_true, probas, labels=["x", "y", "z"]),
        "roc": emitter.plot.roc_curve(y_true, probas, classes_to_plot=[1]),
    }
    run, rows = logged(emitter_env, charts)
    docs = {key: doc(rows[key]) for key in charts}
    assert {(r["kind"], r["mime"]) for r in rows.values()} == {("plot", PLOT_MIME)}
    assert docs["line"]["spec"] == {"chart": "line", "x": "step", "y": "loss", "color": "run", "title": "Loss"}
    assert docs["line"]["table"]["data"] == points._document()["data"]
    assert docs["scatter"]["spec"] == {"chart": "scatter", "x": "step", "y": "loss"}
    assert docs["bar"]["spec"] == {"chart": "bar", "x": "run", "y": "loss", "title": "Bars"}
    assert docs["hist"]["spec"] == {"chart": "histogram", "x": "loss"}
    assert docs["series"]["table"]["data"][:4] == [[0, "up", 1], [1, "up", 2], [2, "up", 3], [0, "down", 3]]
    cm = docs["cm"]
    assert cm["spec"] == {"chart": "heatmap", "x": "Predicted", "y": "Actual", "value": "nPredictions",
                          "title": "Confusion Matrix Curve", "preset": "confusion_matrix"}
    counts = {(a, p): n for a, p, n in cm["table"]["data"]}
    assert counts[("a", "a")] == 1 and counts[("b", "b")] == 1 and counts[("b", "c")] == 1 and sum(counts.values()) == 4
    assert sum(n for _, _, n in docs["cm_probs"]["table"]["data"]) == 200
    pr = docs["pr"]
    assert pr["spec"]["x"] == "recall" and pr["spec"]["color"] == "class"
    assert {c for c, _, _ in pr["table"]["data"]} == {"x", "y", "z"} and len(pr["table"]["data"]) == 3 * 21
    fpr, tpr, _ = roc_curve(y_true, probas[:, 1], pos_label=1)
    assert docs["roc"]["table"]["data"] == [[1, round(f, 3), round(t, 3)] for f, t in zip(fpr, tpr)]


def test_matplotlib_and_plotly_figures_log_as_wandb_logs_them(emitter_env):
    go = pytest.importorskip("plotly.graph_objects")
    from test_media import figure

    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="s"))
    run, rows = logged(emitter_env, {"mpl": figure(), "plotly": fig})
    assert (rows["mpl"]["kind"], rows["mpl"]["mime"], rows["mpl"]["width"]) == ("image", "image/png", 100)
    assert (rows["plotly"]["kind"], rows["plotly"]["mime"]) == ("plotly", "application/vnd.plotly.v1+json")
    assert doc(rows["plotly"]) == json.loads(fig.to_json())


def test_ingest_refuses_kinds_mimes_and_documents_outside_the_contract(ingest):
    run_id = uuid.uuid4().hex[:8]
    table = {"_type": "table", "columns": ["a"], "column_types": ["number"], "data": [[1]]}

    def media(key: str, kind: str, mime: str, data: bytes) -> pb.Media:
        return pb.Media(key=key, kind=kind, mime=mime, data=data)

    b = batch(project(), run_id)
    b.media.extend([
        media("table", "table", TABLE_MIME, dumps(table)),
        media("wav", "audio", "audio/wav", b"RIFF...."),
        media("kind", "hologram", "image/png", b"x"),
        media("mime", "audio", "image/png", b"x"),
        media("ragged", "table", TABLE_MIME, dumps({**table, "data": [[1, 2]]})),
        media("badref", "table", TABLE_MIME, dumps({**table, "data": [[{"_media": "image", "sha256": "x"}]]})),
        media("spec", "plot", PLOT_MIME, dumps({"_type": "plot", "table": table, "spec": {"chart": "line",
                                                                                          "x": "a", "y": "b"}})),
        media("points", "object3d", POINTS_MIME, b"[[1, 2, 3, 4, 5]]"),
        media("notjson", "object3d", POINTS_MIME, b"[[1, 2"),
        media("html", "html", "text/html", b"\xff\xfe"),
    ])
    [ack] = stream(ingest.address, [b.SerializeToString()])
    reasons = {r.what.split(",")[0].split("'")[1]: r.reason for r in ack.rejected}
    assert set(reasons) == {"kind", "mime", "ragged", "badref", "spec", "points", "notjson", "html"}
    assert "kind 'hologram' is not one of image, audio" in reasons["kind"]
    assert "mime 'image/png' is not one a audio may have" in reasons["mime"]
    assert "table row 0 must be a list of 1 cells" in reasons["ragged"]
    assert "sha256 must be 64 lowercase hex digits" in reasons["badref"]
    assert "y='b' is not a column" in reasons["spec"]
    assert "point 0 must be 3, 4 or 6 finite numbers" in reasons["points"]
    assert "must be JSON" in reasons["notjson"] and "UTF-8" in reasons["html"]
    stored = {r["key"]: r for r in media_rows(ingest, run_id)}
    assert set(stored) == {"table", "wav"}
    assert json.loads(blob(stored["table"]["uri"])) == table
    assert stored["table"]["sha256"].decode() == hashlib.sha256(dumps(table)).hexdigest()


def test_lists_of_media_keep_their_order_and_a_list_of_tables_is_refused_by_name(emitter_env):
    clips = [emitter.Audio(np.full(50, i, np.int16), sample_rate=8000, caption=str(i)) for i in range(3)]
    table = emitter.Table(columns=["a"], data=[[1]])
    run = emitter.init(project=project())
    emitter.log({"clips": clips, "tables": [table, table], "ok": 1.0})
    emitter.finish()
    rows = media_rows(emitter_env, run.id)
    assert [(r["key"], r["idx"], r["caption"]) for r in rows] == [("clips", i, str(i)) for i in range(3)]
    assert [wav_samples(blob(r["uri"]))[0][0, 0] for r in rows] == [0, 1, 2]
    assert "tables" in run.stats()["rejected_keys"]
