"""Media: Image from every input type round-trips through the blob store; Histogram; validation."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import uuid
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from test_ingest_validation import batch, stream

import emitter
from fixtures.clickhouse_http import serve_clickhouse_http
from ingest.blobs import DirectoryBlobStore, open_blob_store
from ingest.storage import open_store
from ingest.validate import decode
from pulse.v1 import telemetry_pb2 as pb


def project() -> str:
    return f"media-{uuid.uuid4().hex[:8]}"


def blob(uri: str) -> bytes:
    assert uri.startswith("file://")
    return Path(urlparse(uri).path).read_bytes()


def pixels(png: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(png)) as img:
        assert img.format == "PNG"
        return np.array(img)


def media_rows(ingest, run_id: str) -> list[dict]:
    return ingest.query("SELECT key, step, idx, kind, uri, sha256, mime, width, height, caption FROM media FINAL "
                        "WHERE run_id = {r:String} ORDER BY key, step, idx", r=run_id)


def figure():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5), dpi=50)
    fig.add_subplot().plot([0, 1, 2], [2, 0, 1])
    return fig


def test_images_from_every_input_type_round_trip_to_the_same_pixels(emitter_env, tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (4, 7), dtype=np.uint8)
    rgba = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    levels = rng.integers(0, 256, (3, 5, 6))  # float input in [0, 1], channels first
    signed = rng.normal(size=(5, 5))
    palette = PILImage.fromarray(rgb).convert("P")
    png_path, jpeg_path = tmp_path / "in.png", tmp_path / "in.jpg"
    PILImage.fromarray(rgba).save(png_path)
    PILImage.fromarray(rgb).save(jpeg_path, quality=90)
    fig = figure()
    rendered = io.BytesIO()
    fig.savefig(rendered, format="rgba")

    inputs = {
        "numpy_hwc": (rgb, rgb),
        "numpy_gray": (gray, gray),
        "numpy_rgba": (rgba, rgba),
        "numpy_chw_float": (levels / 255.0, levels.transpose(1, 2, 0).astype(np.uint8)),
        "numpy_signed_float": (signed, np.rint((signed - signed.min()) / np.ptp(signed) * 255).astype(np.uint8)),
        "numpy_hw1": (gray[..., None], gray),
        "torch_chw": (torch.from_numpy(levels / 255.0).float(), levels.transpose(1, 2, 0).astype(np.uint8)),
        "torch_bool": (torch.from_numpy(gray > 127), (gray > 127).astype(np.uint8) * 255),
        "pil_rgb": (PILImage.fromarray(rgb), rgb),
        "pil_palette": (palette, np.array(palette.convert("RGB"))),
        "png_path": (png_path, rgba),
        "jpeg_path": (str(jpeg_path), np.array(PILImage.open(jpeg_path).convert("RGB"))),
    }
    run = emitter.init(project=project())
    emitter.log({key: emitter.Image(data, caption=key) for key, (data, _) in inputs.items()} | {"loss": 0.5})
    emitter.log({"figure": emitter.Image(fig)})
    emitter.finish()
    assert run.stats()["rejected_keys"] == {}

    rows = {r["key"]: r for r in media_rows(emitter_env, run.id)}
    assert set(rows) == set(inputs) | {"figure"}
    for key, (_, expected) in inputs.items():
        row = rows[key]
        png = blob(row["uri"])
        assert np.array_equal(pixels(png), expected), key
        assert (row["width"], row["height"]) == (expected.shape[1], expected.shape[0])
        assert (row["kind"], row["mime"], row["caption"], row["step"]) == ("image", "image/png", key, 0)
        assert row["sha256"].decode() == hashlib.sha256(png).hexdigest()
    assert blob(rows["png_path"]["uri"]) == png_path.read_bytes()  # a PNG file is kept as it is
    row = rows["figure"]
    width, height = row["width"], row["height"]
    assert (width, height, row["step"]) == (100, 75, 1)
    assert np.array_equal(pixels(blob(row["uri"])), np.frombuffer(rendered.getvalue(), np.uint8).reshape(75, 100, 4))
    assert emitter_env.scalar("SELECT value FROM metrics WHERE run_id = {r:String} AND key = 'loss'", r=run.id) == 0.5


def test_image_lists_keep_their_order_and_identical_images_share_one_blob(emitter_env):
    run = emitter.init(project=project())
    frames = [np.full((4, 4), v, np.uint8) for v in (0, 128, 255)]
    emitter.log({"frames": [emitter.Image(f, caption=f"frame {i}") for i, f in enumerate(frames)]})
    emitter.log({"frames": [emitter.Image(frames[1])]})
    emitter.finish()
    rows = media_rows(emitter_env, run.id)
    assert [(r["step"], r["idx"], r["caption"]) for r in rows] == [
        (0, 0, "frame 0"), (0, 1, "frame 1"), (0, 2, "frame 2"), (1, 0, "")]
    for r, frame in zip(rows, frames + [frames[1]]):
        assert np.array_equal(pixels(blob(r["uri"])), frame)
    assert rows[1]["uri"] == rows[3]["uri"]  # content-addressed: stored once
    assert len(list(Path(urlparse(rows[1]["uri"]).path).parent.glob("*.png"))) >= 1


def test_an_oversized_image_is_rejected_for_its_key_with_a_warning_and_the_rest_is_kept(emitter_env, caplog):
    noise = np.random.default_rng(1).integers(0, 256, (3000, 3000, 3), dtype=np.uint8)  # 27 MB, incompressible
    run = emitter.init(project=project())
    with caplog.at_level(logging.WARNING, logger="pulse"):
        emitter.log({"huge": emitter.Image(noise), "small": emitter.Image(noise[:8, :8]), "loss": 1.0})
        emitter.finish()
    assert [r["key"] for r in media_rows(emitter_env, run.id)] == ["small"]
    assert "limit is 25,000,000" in run.stats()["rejected_keys"]["huge"]
    assert any("huge" in r.message and "25,000,000" in r.message for r in caplog.records)
    assert emitter_env.scalar("SELECT count() FROM metrics WHERE run_id = {r:String}", r=run.id) == 1


def test_histogram_objects_from_sequences_and_numpy_histograms_are_stored(emitter_env):
    values = np.concatenate([np.random.default_rng(2).normal(size=1000), [np.nan, np.inf]])
    counts, edges = np.histogram(values[:1000], bins=10)
    run = emitter.init(project=project())
    emitter.log({"acts": emitter.Histogram(values, num_bins=32),
                 "from_np": emitter.Histogram(np_histogram=(counts, edges)),
                 "tensor": emitter.Histogram(torch.arange(10.0), num_bins=5)})
    emitter.finish()
    rows = {r["key"]: r for r in emitter_env.query(
        "SELECT key, count, sum, min, max, nonfinite, bucket_edges, bucket_counts FROM histograms "
        "WHERE run_id = {r:String}", r=run.id)}
    acts = rows["acts"]
    expected_counts, expected_edges = np.histogram(values[:1000], bins=32)
    assert acts["bucket_counts"] == expected_counts.tolist()
    assert acts["bucket_edges"] == pytest.approx(expected_edges.tolist())
    assert (acts["count"], acts["nonfinite"]) == (1002, 2)
    assert (acts["min"], acts["max"]) == (values[:1000].min(), values[:1000].max())
    assert rows["from_np"]["bucket_counts"] == counts.tolist() and rows["from_np"]["count"] == 1000
    assert rows["tensor"]["bucket_counts"] == [2, 2, 2, 2, 2] and rows["tensor"]["sum"] == 45.0


def test_media_objects_refuse_bad_input_with_a_clear_error():
    with pytest.raises(ValueError, match="HxW, HxWxC or CxHxW"):
        emitter.Image(np.zeros((2, 3, 5, 5)))
    with pytest.raises(ValueError, match="HxW, HxWxC or CxHxW"):
        emitter.Image(np.zeros((5, 5, 2)))
    with pytest.raises(ValueError, match="num_bins must be"):
        emitter.Histogram([1, 2], num_bins=1000)
    with pytest.raises(ValueError, match="n counts and n \\+ 1 edges"):
        emitter.Histogram(np_histogram=([1, 2], [0, 1]))


def test_ingest_rejects_bad_media_with_reasons_and_stores_the_rest(ingest):
    run_id = uuid.uuid4().hex[:8]
    good, other = b"\x89PNG good bytes", b"other bytes"
    b = batch(project(), run_id)
    b.media.extend([
        pb.Media(key="good", kind="image", mime="image/png", data=good),
        pb.Media(key="liar", kind="image", mime="image/png", data=other, sha256=hashlib.sha256(good).hexdigest()),
        pb.Media(key="both", kind="image", data=other, uri="s3://x/y"),
        pb.Media(key="neither", kind="image"),
        pb.Media(key="huge", kind="image", data=b"\0" * 25_000_001),
        pb.Media(key="elsewhere", kind="image", uri="s3://bucket/a.png", step=3, index=2),
    ])
    [ack] = stream(ingest.address, [b.SerializeToString()])
    reasons = {r.what.split(",")[0]: r.reason for r in ack.rejected}
    assert set(reasons) == {"media[key='liar'", "media[key='both'", "media[key='neither'", "media[key='huge'"}
    assert "does not match the bytes" in reasons["media[key='liar'"]
    assert "not both" in reasons["media[key='both'"] and "either its bytes" in reasons["media[key='neither'"]
    assert "the limit is 25,000,000" in reasons["media[key='huge'"]
    rows = {r["key"]: r for r in media_rows(ingest, run_id)}
    assert set(rows) == {"good", "elsewhere"}
    assert blob(rows["good"]["uri"]) == good
    assert rows["good"]["sha256"].decode() == hashlib.sha256(good).hexdigest()
    elsewhere = rows["elsewhere"]
    assert (elsewhere["uri"], elsewhere["step"], elsewhere["idx"]) == ("s3://bucket/a.png", 3, 2)


def test_directory_blob_store_is_content_addressed_and_stays_in_its_root(tmp_path):
    store = open_blob_store((tmp_path / "blobs").as_uri())
    assert isinstance(store, DirectoryBlobStore)
    sha = hashlib.sha256(b"abc").hexdigest()
    uri = store.put(sha, b"abc", "image/png")
    assert uri == store.put(sha, b"abc", "image/png") and uri.endswith(f"/{sha[:2]}/{sha}.png")
    assert store.get(uri) == b"abc"
    assert [p.name for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == [f"{sha}.png"]
    with pytest.raises(ValueError, match="not in this blob store"):
        store.get((tmp_path / "elsewhere.png").as_uri())
    with pytest.raises(ValueError, match="must be a path, file:///path or s3://bucket/prefix"):
        open_blob_store("gs://bucket/prefix")


@pytest.fixture(scope="module", params=["chdb", "http"])
def store(request, tmp_path_factory):
    with contextlib.ExitStack() as stack:
        if request.param == "chdb":
            url = f"chdb://{tmp_path_factory.mktemp('chdb')}"
        else:
            url = stack.enter_context(serve_clickhouse_http(tmp_path_factory.mktemp("http")))
        s = open_store(url)
        yield s
        s.close()


def test_media_system_graph_and_alert_rows_insert_on_every_backend(store, tmp_path):
    """What decode() builds from the telemetry records goes into the schema's tables as it is."""
    run_id, ts = uuid.uuid4().hex[:8], 1_700_000_000_000_000
    png = emitter.Image(np.zeros((2, 3), np.uint8)).png()
    b = pb.Batch(project="contract", run_id=run_id, stream_id=f"{run_id}.s", seq=1)
    b.media.append(pb.Media(key="img", step=4, index=1, kind="image", mime="image/png", width=3, height=2,
                            caption="c", data=png))
    b.system.host = "box"
    b.system.keys.extend(["gpu.util", "cpu.percent"])
    b.system.devices.extend(["gpu0", ""])
    b.system.key_index.extend([0, 1])
    b.system.device_index.extend([0, 1])
    b.system.ts_us.extend([ts, ts])
    b.system.value.extend([87.0, 12.5])
    b.events.append(pb.Event(graph=pb.ModelGraph(graph_json='{"models": []}')))
    b.events.append(pb.Event(alert=pb.Alert(ts_us=ts, level="WARN", title="Gradient exploding: w", text="t")))
    decoded = decode(b, DirectoryBlobStore(tmp_path / "blobs"))
    assert not decoded.rejected
    for table, rows in decoded.tables.items():
        store.insert(table, rows)
    where = {"r": run_id}
    [media] = store.query_rows("SELECT key, step, idx, sha256, width, height, caption, uri FROM media "
                               "WHERE run_id = {r:String}", where)
    assert media[:7] == ("img", 4, 1, hashlib.sha256(png).hexdigest().encode(), 3, 2, "c")  # FixedString: bytes
    assert Path(urlparse(media[7]).path).read_bytes() == png
    assert sorted(store.query_rows("SELECT device, key, value FROM system_metrics WHERE run_id = {r:String}",
                                   where)) == [("", "cpu.percent", 12.5), ("gpu0", "gpu.util", 87.0)]
    assert store.query_rows("SELECT graph FROM model_graphs WHERE run_id = {r:String}", where) == [
        ('{"models": []}',)]
    assert store.query_rows("SELECT level, title FROM alerts WHERE run_id = {r:String}", where) == [
        ("WARN", "Gradient exploding: w")]
