"""Media bytes in an S3 bucket: Pulse's S3 client (boto3) against a server that checks every signature, end to end."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import uuid

import numpy as np
import pytest
from PIL import Image as PILImage

import emitter
from conftest import ROOT, Ingest, free_port
from dashboard.blobs import BlobUnavailable, read_blob
from fixtures.s3_server import serve_s3
from pulse.s3 import NO_CREDENTIALS, S3Client, S3Config, S3Error


@pytest.fixture(scope="module")
def s3():
    with serve_s3() as server:
        yield server


def bucket(s3) -> str:
    name = f"b-{uuid.uuid4().hex[:10]}"
    s3.boto().create_bucket(Bucket=name)
    return name


def client(s3, name: str, **changes) -> S3Client:
    settings = {"access_key": s3.access_key, "secret_key": s3.secret_key, "endpoint": s3.endpoint, **changes}
    return S3Client(name, S3Config(**settings))


def test_objects_go_in_and_out_with_signatures_the_server_accepts(s3):
    name = bucket(s3)
    store = client(s3, name)
    key, data = "run 1/a+b=c%d.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # odd keys are signed as sent
    assert store.exists(key) is False
    store.put(key, data, "image/png")
    assert store.exists(key) is True and store.get(key) == data
    stored = s3.boto().get_object(Bucket=name, Key=key)  # what another S3 client sees
    assert stored["Body"].read() == data and stored["ContentType"] == "image/png"
    with pytest.raises(S3Error, match="NoSuchKey") as missing:
        store.get("not/there.png")
    assert missing.value.status == 404
    with pytest.raises(S3Error, match="TooLarge"):
        store.get(key, max_bytes=100)


def no_credentials_anywhere(monkeypatch, tmp_path) -> None:
    """Nothing boto3's credential chain could find: no keys, no profile files, no instance or container role."""
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                     "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_wrong_secret_key_is_refused_by_the_server_with_a_clear_error(s3, monkeypatch):
    name = bucket(s3)
    client(s3, name).put("x.png", b"1", "image/png")
    wrong = client(s3, name, secret_key="not-the-secret")
    with pytest.raises(S3Error, match="SignatureDoesNotMatch") as refused:
        wrong.get("x.png")
    assert refused.value.status == 403 and "\n" not in str(refused.value)
    with pytest.raises(S3Error, match="SignatureDoesNotMatch"):
        wrong.put("y.png", b"2", "image/png")
    with pytest.raises(S3Error, match="403 Forbidden: the keys are wrong"):  # a HEAD's answer has no body
        wrong.exists("x.png")
    for variable, value in {**s3.env(), "AWS_SECRET_ACCESS_KEY": "not-the-secret"}.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(BlobUnavailable, match=f"cannot read s3://{name}/x.png: .*SignatureDoesNotMatch"):
        read_blob(f"s3://{name}/x.png", "")


def test_wrong_credentials_a_missing_bucket_and_no_server_each_say_what_is_wrong(s3, monkeypatch, tmp_path):
    name = bucket(s3)
    with pytest.raises(S3Error, match="InvalidAccessKeyId"):
        client(s3, name, access_key="AKIANOSUCHKEY0000000").get("x")
    with pytest.raises(S3Error, match="NoSuchBucket"):
        client(s3, f"{name}-gone").put("x", b"1")
    with pytest.raises(S3Error, match="Unreachable"):
        client(s3, name, endpoint=f"http://127.0.0.1:{free_port()}").get("x")
    with pytest.raises(ValueError, match="PULSE_S3_ENDPOINT must be http"):
        client(s3, name, endpoint="127.0.0.1:9000")
    no_credentials_anywhere(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID"):
        S3Client(name)
    with pytest.raises(BlobUnavailable, match="AWS_ACCESS_KEY_ID"):
        read_blob(f"s3://{name}/x.png", "")


def test_keys_from_a_credentials_file_work_as_boto3_finds_them(s3, monkeypatch, tmp_path):
    name = bucket(s3)
    no_credentials_anywhere(monkeypatch, tmp_path)
    (tmp_path / "credentials").write_text(f"[media]\naws_access_key_id = {s3.access_key}\n"
                                          f"aws_secret_access_key = {s3.secret_key}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "media")
    monkeypatch.setenv("PULSE_S3_ENDPOINT", s3.endpoint)
    S3Client(name).put("k.bin", b"from a profile")
    assert read_blob(f"s3://{name}/k.bin", "") == b"from a profile"
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(ValueError, match="credentials: .*no-such-profile"):
        S3Client(name)


def test_the_s3_library_is_imported_only_by_a_process_that_uses_an_s3_blob_store():
    probe = ("import sys, emitter, ingest.blobs, ingest.server, dashboard.blobs, pulse.s3; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 's3transfer')))")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "[]"


def png_pixels(data: bytes) -> np.ndarray:
    with PILImage.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return np.array(image)


@pytest.fixture
def s3_ingest(s3, tmp_path, monkeypatch):
    """An ingest whose blob store is s3://<bucket>/pulse, and emitters pointed at it: (ingest, bucket)."""
    for variable, value in s3.env().items():
        monkeypatch.setenv(variable, value)
    name = f"b-{uuid.uuid4().hex[:10]}"  # created by each test, when it wants the bucket to exist
    server = Ingest(tmp_path / "data", "--blobs", f"s3://{name}/pulse").start()
    monkeypatch.setenv("PULSE_SERVER", server.address)
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
    monkeypatch.setenv("PULSE_FINISH_TIMEOUT", "60")
    yield server, name
    server.stop()


def test_images_logged_through_an_s3_blob_store_are_in_the_bucket_once_and_the_dashboard_shows_them(s3, s3_ingest):
    server, name = s3_ingest
    s3.boto().create_bucket(Bucket=name)
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 256, (8, 6, 3), dtype=np.uint8) for _ in range(2))
    run = emitter.init(project=f"s3-{uuid.uuid4().hex[:6]}")
    for step, image in enumerate((first, first, second)):  # the same image twice: one object
        emitter.log({"sample": emitter.Image(image)}, step=step)
    emitter.finish()

    rows = server.query("SELECT step, uri, toString(sha256) AS sha256 FROM media FINAL WHERE run_id = {r:String} "
                        "ORDER BY step", r=run.id)
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert all(r["uri"] == f"s3://{name}/pulse/{r['sha256'][:2]}/{r['sha256']}.png" for r in rows)
    listed = s3.boto().list_objects_v2(Bucket=name)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted({r["uri"].split(f"{name}/", 1)[1] for r in rows})
    assert len(listed) == 2
    for row, image in zip(rows, (first, first, second)):
        assert np.array_equal(png_pixels(read_blob(row["uri"], row["sha256"], root=f"s3://{name}/pulse")), image)
    with pytest.raises(BlobUnavailable, match="outside the blob store"):
        read_blob(rows[0]["uri"], rows[0]["sha256"], root=f"s3://{name}/elsewhere")
    with pytest.raises(BlobUnavailable, match="sha256 mismatch"):
        read_blob(rows[0]["uri"], rows[2]["sha256"], root=f"s3://{name}/pulse")


def test_media_wait_for_a_failing_bucket_and_none_is_lost(s3, s3_ingest):
    server, name = s3_ingest  # the bucket does not exist yet: every upload fails until it does
    image = np.random.default_rng(1).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    run = emitter.init(project=f"s3-{uuid.uuid4().hex[:6]}")
    emitter.log({"loss": 0.5, "sample": emitter.Image(image)}, step=0)
    emitter.log({"loss": 0.25}, step=1)
    later = threading.Timer(3.0, lambda: s3.boto().create_bucket(Bucket=name))
    later.start()
    emitter.finish()  # waits while the ingest answers UNAVAILABLE, then delivers everything
    later.join()

    [row] = server.query("SELECT uri, toString(sha256) AS sha256 FROM media FINAL WHERE run_id = {r:String}",
                         r=run.id)
    assert np.array_equal(png_pixels(read_blob(row["uri"], row["sha256"])), image)
    losses = server.query("SELECT step, value FROM metrics FINAL WHERE run_id = {r:String} AND key = 'loss' "
                          "ORDER BY step", r=run.id)
    assert [(r["step"], r["value"]) for r in losses] == [(0, 0.5), (1, 0.25)]
    assert "NoSuchBucket" in server.log_path.read_text()  # it did fail, and was retried


def test_ingest_refuses_an_s3_blob_store_without_credentials_with_one_clear_line(tmp_path, monkeypatch):
    no_credentials_anywhere(monkeypatch, tmp_path)
    refused = subprocess.run([sys.executable, "-m", "pulse.cli", "ingest", "--data", str(tmp_path), "--port",
                              str(free_port()), "--blobs", "s3://media/pulse"], capture_output=True, text=True,
                             timeout=120, cwd=ROOT)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == f"pulse ingest: {NO_CREDENTIALS}"
    assert NO_CREDENTIALS.startswith("an s3:// blob store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
