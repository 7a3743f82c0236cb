"""Artifacts end to end: the real emitter, a real ingest on loopback, real chDB and a real blob directory.

Bytes the server received are counted from the ingest's own log lines (`artifact blob
<sha> of <project>: N bytes received`), one per UploadBlob call.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import emitter
from conftest import ROOT, Ingest, run_script, wait_for
from emitter.artifact_upload import ArtifactClient, ArtifactError
from pulse.artifact_manifest import manifest_digest
from pulse.v1 import artifacts_pb2 as pb


def project() -> str:
    return f"art-{uuid.uuid4().hex[:8]}"


def received(server: Ingest, project_name: str) -> int:
    """Blob bytes the ingest received for `project_name`, by its log."""
    pattern = re.compile(rf"artifact blob \w+ of {re.escape(project_name)}: (\d+) bytes received")
    return sum(int(m.group(1)) for m in pattern.finditer(server.log_path.read_text()))


def sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def real_bytes(path: Path, mb: int, seed: int = 0) -> Path:
    """`mb` MiB of real (not sparse, not constant) bytes, written quickly: a random MiB stamped per MiB."""
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        for i in range(mb):
            block[:16] = seed.to_bytes(8, "little") + i.to_bytes(8, "little")
            f.write(block)
    return path


def dataset(folder: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "train.csv").write_text("x,y\n1,2\n")
    for i in range(3):
        (folder / "images" / f"{i}.png").write_bytes(os.urandom(2000 + i))
    return folder


def build(folder: Path, name: str = "mnist") -> emitter.Artifact:
    artifact = emitter.Artifact(name, type="dataset", description="digits", metadata={"rows": 4})
    artifact.add_file(folder / "train.csv")
    artifact.add_dir(folder / "images", name="images")
    with artifact.new_file("labels.txt") as f:
        f.write("0 1 2")
    return artifact


@pytest.fixture
def env(emitter_env, monkeypatch):
    monkeypatch.setenv("PULSE_SYSTEM_INTERVAL", "0")
    return emitter_env


def test_unchanged_log_is_the_same_version_and_uploads_nothing_then_one_changed_file_is_v1(env, tmp_path):
    p = project()
    folder = dataset(tmp_path / "data")
    run = emitter.init(project=p)
    first = run.log_artifact(build(folder), aliases=["best"]).wait(60)
    assert (first.version, first.name, first.aliases) == ("v0", "mnist:v0", ["latest", "best"])
    assert sorted(e.path for e in first.files()) == ["images/0.png", "images/1.png", "images/2.png", "labels.txt",
                                                      "train.csv"]
    sent_first = received(env, p)
    assert sent_first == sum(e.size for e in first.files())

    again = run.log_artifact(build(folder)).wait(60)
    assert again.version == "v0" and again.digest == first.digest
    assert received(env, p) == sent_first, "an unchanged artifact sent bytes"

    (folder / "images" / "1.png").write_bytes(os.urandom(5000))
    second = run.log_artifact(build(folder), aliases=["best"]).wait(60)
    assert second.version == "v1"
    assert received(env, p) - sent_first == 5000, "only the changed file is sent"
    run.finish()

    aliases = env.query("SELECT alias, version FROM artifact_aliases FINAL WHERE project = {p:String} ORDER BY alias",
                        p=p)
    assert aliases == [{"alias": "best", "version": 1}, {"alias": "latest", "version": 1}]
    versions = env.query("SELECT version, digest, file_count, size, created_by_run, metadata, state FROM "
                         "artifact_versions FINAL WHERE project = {p:String} ORDER BY version", p=p)
    assert [(v["version"], v["digest"], v["file_count"], v["created_by_run"]) for v in versions] == [
        (0, first.digest, 5, run.id), (1, second.digest, 5, run.id)]
    assert versions[0]["metadata"] == '{"rows": 4}' and versions[0]["state"] == "committed"
    files = env.query("SELECT path, sha256, size FROM artifact_files FINAL WHERE project = {p:String} AND version = 1 "
                      "ORDER BY path", p=p)
    assert [(f["path"], f["sha256"], f["size"]) for f in files] == [(e.path, e.sha256, e.size) for e in second.files()]


def test_use_and_download_reproduce_the_bytes_and_lineage_names_producer_and_consumers(env, tmp_path, monkeypatch):
    p = project()
    folder = dataset(tmp_path / "data")
    producer = emitter.init(project=p)
    logged = producer.log_artifact(build(folder, "digits")).wait(60)
    producer.finish()
    consumers = []
    for n in range(2):
        consumer = emitter.init(project=p)
        used = consumer.use_artifact("digits:latest" if n == 0 else "digits:v0", type="dataset")
        assert (used.name, used.version, used.digest, used.metadata) == ("digits:v0", "v0", logged.digest, {"rows": 4})
        root = Path(used.download(str(tmp_path / f"copy{n}")))
        for entry in used.files():
            assert sha(root / entry.path) == entry.sha256
        consumers.append(consumer.id)
        consumer.finish()
    assert (root / "train.csv").read_text() == "x,y\n1,2\n" and (root / "labels.txt").read_text() == "0 1 2"
    one = used.get_path("images/2.png").download(str(tmp_path / "one"))
    assert sha(Path(one)) == sha(folder / "images" / "2.png")
    monkeypatch.chdir(tmp_path)
    assert Path(used.download()).resolve() == (tmp_path / "artifacts" / "digits:v0").resolve()  # W&B's default root

    lineage = env.query("SELECT run_id, direction FROM artifact_usage FINAL WHERE project = {p:String} "
                        "ORDER BY direction DESC, run_id", p=p)
    assert lineage == [{"run_id": producer.id, "direction": "output"},
                       *({"run_id": c, "direction": "input"} for c in sorted(consumers))]
    with pytest.raises(ValueError, match="no alias 'nope'"):
        run = emitter.init(project=p)
        try:
            run.use_artifact("digits:nope")
        finally:
            run.finish()


def test_two_concurrent_commits_of_one_name_get_distinct_versions_and_identical_content_one(env):
    p = project()
    client = ArtifactClient(env.address)
    blobs = [os.urandom(100) for _ in range(8)]
    shas = [hashlib.sha256(b).hexdigest() for b in blobs]
    for data, digest in zip(blobs, shas):
        upload_bytes(client, p, data, digest)

    def commit(i: int, out: list) -> None:
        entries = [("f.bin", shas[i % 8], 100, "", "")]
        request = pb.CommitRequest(project=p, name="race", type="model", digest=manifest_digest(entries),
                                   entries=[pb.ManifestEntry(path="f.bin", sha256=shas[i % 8], size=100)])
        out.append((i % 8, ArtifactClient(env.address).commit(request).version))

    out: list = []
    threads = [threading.Thread(target=commit, args=(i, out)) for i in range(16)]  # each content twice
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_content = {}
    for content, version in out:
        by_content.setdefault(content, set()).add(version)
    assert all(len(v) == 1 for v in by_content.values()), by_content  # the same content is one version
    assert sorted(v.pop() for v in by_content.values()) == list(range(8))  # distinct content, distinct versions


def upload_bytes(client: ArtifactClient, p: str, data: bytes, digest: str, folder: Path | None = None) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile(dir=folder) as f:
        f.write(data)
        f.flush()
        client.upload(p, digest, len(data), Path(f.name))


def test_bad_input_is_refused_naming_the_problem(env, tmp_path):
    with pytest.raises(ValueError, match="may hold only letters"):
        emitter.Artifact("my model", type="model")
    artifact = emitter.Artifact("ok", type="model")
    (tmp_path / "a").write_text("a")
    artifact.add_file(tmp_path / "a")
    with pytest.raises(ValueError, match="already has a file 'a'"):
        artifact.add_file(tmp_path / "a")
    with pytest.raises(ValueError, match="'..' part"):
        artifact.add_file(tmp_path / "a", name="../escape")
    with pytest.raises(ValueError, match="file:// or s3://"):
        artifact.add_reference("http://example.com/x")
    run = emitter.init(project=project())
    with pytest.raises(ValueError, match="looks like a version"):
        run.log_artifact(artifact, aliases=["v3"])
    run.log_artifact(artifact).wait(60)
    with pytest.raises(ValueError, match="logged and can no longer change"):
        artifact.add_file(tmp_path / "a", name="b")
    run.finish()

    client = ArtifactClient(env.address)
    entries = [("x", "0" * 64, 1, "", "")]
    forged = pb.CommitRequest(project="p", name="x", type="t", digest="f" * 64,
                              entries=[pb.ManifestEntry(path="x", sha256="0" * 64, size=1)])
    with pytest.raises(ArtifactError, match="the manifest's digest is"):
        client.commit(forged)
    forged.digest = manifest_digest(entries)
    with pytest.raises(ArtifactError, match="were not uploaded") as missing:
        client.commit(forged)
    assert missing.value.code.name == "FAILED_PRECONDITION"
    assert "artifact_blobs is not readable" in str(pytest.raises(Exception, env.query,
                                                                 "SELECT * FROM artifact_blobs").value)


def test_references_are_recorded_not_uploaded_and_downloaded_from_their_uri(env, tmp_path):
    p = project()
    outside = tmp_path / "nfs"
    outside.mkdir()
    (outside / "big.bin").write_bytes(os.urandom(3000))
    run = emitter.init(project=p)
    artifact = emitter.Artifact("refs", type="dataset")
    [entry] = artifact.add_reference(f"file://{outside / 'big.bin'}")
    assert (entry.ref, entry.digest, entry.size) == (f"file://{outside / 'big.bin'}", sha(outside / "big.bin"), 3000)
    run.log_artifact(artifact).wait(60)
    assert received(env, p) == 0
    used = run.use_artifact("refs:v0")
    root = Path(used.download(str(tmp_path / "copy")))
    assert sha(root / "big.bin") == sha(outside / "big.bin")
    (outside / "big.bin").write_bytes(b"changed")
    with pytest.raises(ValueError, match="changed since it was logged"):
        used.download(str(tmp_path / "copy2"))
    run.finish()


def test_save_keeps_run_files_now_live_and_at_the_end(env, tmp_path, monkeypatch):
    p = project()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PULSE_SAVE_INTERVAL", "0.2")
    Path("config.yaml").write_text("lr: 0.1\n")
    Path("logs").mkdir()
    Path("logs/train.log").write_text("epoch 0\n")
    run = emitter.init(project=p)
    assert emitter.save("config.yaml", policy="now") == [str(tmp_path / "config.yaml")]
    emitter.save("logs/*.log")  # live
    emitter.save(str(tmp_path / "model.pt"), policy="end")  # absolute: stored under its base name
    Path("logs/train.log").write_text("epoch 0\nepoch 1\n")
    name = f"run-{run.id}-files"
    wait_for(lambda: env.query("SELECT count() AS n FROM artifact_versions FINAL WHERE project = {p:String} AND "
                               "name = {n:String}", p=p, n=name)[0]["n"] >= 3, timeout=30, what="a live version")
    Path("model.pt").write_bytes(b"weights")
    Path("config.yaml").write_text("lr: 0.2\n")  # saved "now": this change is not stored
    emitter.finish()
    final = client_resolve(env, p, name)
    assert final.type == "run-files"
    contents = {e.path: e.sha256 for e in final.entries}
    assert contents == {"config.yaml": hashlib.sha256(b"lr: 0.1\n").hexdigest(),
                        "logs/train.log": hashlib.sha256(b"epoch 0\nepoch 1\n").hexdigest(),
                        "model.pt": hashlib.sha256(b"weights").hexdigest()}
    with pytest.raises(ValueError, match="policy must be one of"):
        run = emitter.init(project=p)
        try:
            run.save("x", policy="sometimes")
        finally:
            run.finish()


def client_resolve(server: Ingest, p: str, name: str, ref: str = "") -> pb.ArtifactVersion:
    client = ArtifactClient(server.address)
    try:
        return client.resolve(p, name, ref)
    finally:
        client.close()


def test_offline_run_spools_the_artifact_and_pulse_sync_uploads_it(env, tmp_path):
    p = project()
    folder = dataset(tmp_path / "data")
    big = real_bytes(tmp_path / "data" / "ckpt.bin", 2)
    script = f"""
        import emitter
        run = emitter.init(project={p!r}, mode="offline")
        artifact = emitter.Artifact("offline-model", type="model")
        artifact.add_dir({str(folder)!r})
        run.log_artifact(artifact, aliases=["candidate"])
        emitter.finish()
    """
    done = run_script(script, env={"PULSE_ARTIFACT_STAGE_MAX_MB": "1"})
    assert done.returncode == 0, done.stderr
    assert "artifact(s) of this offline run are kept in" in done.stderr and "pulse sync" in done.stderr
    (folder / "train.csv").unlink()  # a small file is staged: deleting it after log_artifact loses nothing
    sync = subprocess.run([sys.executable, "-m", "pulse.cli", "sync", "--server", env.address], capture_output=True,
                          text=True, cwd=ROOT, env=os.environ, timeout=300)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "artifact files uploaded as offline-model:v0" in sync.stdout
    version = client_resolve(env, p, "offline-model", "candidate")
    assert version.version == 0 and {e.path for e in version.entries} == {"train.csv", "ckpt.bin", "images/0.png",
                                                                         "images/1.png", "images/2.png"}
    assert received(env, p) == version.size
    assert next(e for e in version.entries if e.path == "ckpt.bin").sha256 == sha(big)
    again = subprocess.run([sys.executable, "-m", "pulse.cli", "sync", "--server", env.address], capture_output=True,
                           text=True, cwd=ROOT, env=os.environ, timeout=120)
    assert "nothing to upload" in again.stdout


def test_a_large_file_changed_before_its_upload_is_refused_and_set_aside(env, tmp_path):
    p = project()
    big = real_bytes(tmp_path / "ckpt.bin", 2)
    script = f"""
        import emitter
        run = emitter.init(project={p!r}, mode="offline")
        artifact = emitter.Artifact("changed", type="model")
        artifact.add_file({str(big)!r})   # over the staging limit: uploaded from where it is
        run.log_artifact(artifact)
        emitter.finish()
    """
    assert run_script(script, env={"PULSE_ARTIFACT_STAGE_MAX_MB": "1"}).returncode == 0
    with open(big, "r+b") as f:
        f.write(b"overwritten")  # same size, other bytes
    sync = subprocess.run([sys.executable, "-m", "pulse.cli", "sync", "--server", env.address], capture_output=True,
                          text=True, cwd=ROOT, env=os.environ, timeout=120)
    assert sync.returncode == 1 and "do not hash to" in sync.stdout, sync.stdout + sync.stderr
    failed = list((Path(os.environ["PULSE_DIR"]) / "artifacts" / "failed").iterdir())
    assert len(failed) == 1 and "do not hash to" in (failed[0] / "note.txt").read_text()
    assert env.query("SELECT count() AS n FROM artifact_versions WHERE project = {p:String}", p=p)[0]["n"] == 0


TRAINER = """
import os, sys, emitter
run = emitter.init(project=sys.argv[1])
artifact = emitter.Artifact("checkpoint", type="model")
for path in sys.argv[2:]:
    artifact.add_file(path)
run.log_artifact(artifact, aliases=["best"])
print("LOGGED", flush=True)
artifact.wait()
print("VERSION", artifact.version, artifact.digest, flush=True)
emitter.finish()
# VmHWM, not ru_maxrss: Linux keeps the forking parent's peak (pytest, with chDB loaded) in ru_maxrss
from bench.harness import peak_rss_mb
print("RSS_KB", int(peak_rss_mb(os.getpid()) * 1024), flush=True)
"""


def test_an_ingest_killed_mid_upload_loses_nothing_the_upload_resumes_and_verifies(fresh_ingest, tmp_path):
    p = project()
    fresh_ingest.start()
    big = real_bytes(tmp_path / "ckpt.bin", 300)
    env = {**os.environ, "PULSE_SERVER": fresh_ingest.address, "PULSE_DIR": str(tmp_path / "pulse"),
           "PULSE_SYSTEM_INTERVAL": "0", "PULSE_FINISH_TIMEOUT": "300"}
    trainer = subprocess.Popen([sys.executable, "-c", TRAINER, p, str(big)], env=env, cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partials = fresh_ingest.data_dir / "blobs" / ".partial"
    wait_for(lambda: any(f.stat().st_size > 32 << 20 for f in partials.glob("*.part")), timeout=120, step=0.005,
             what="the upload to be under way")
    fresh_ingest.kill()  # SIGKILL mid-upload
    [partial] = partials.glob("*.part")
    kept = partial.stat().st_size
    assert 0 < kept < big.stat().st_size
    time.sleep(1)
    fresh_ingest.start()
    out, err = trainer.communicate(timeout=600)
    assert trainer.returncode == 0, err[-3000:]
    digest = sha(big)
    blob = fresh_ingest.data_dir / "blobs" / digest[:2] / f"{digest}.bin"
    assert sha(blob) == digest  # the stored blob verifies
    assert "VERSION v0" in out
    # The killed ingest logged nothing of its call; the restarted one took the rest, from the partial's end.
    log = fresh_ingest.log_path.read_text()
    resumed = [int(m.group(1)) for m in re.finditer(r"bytes received \(from offset (\d+)", log)]
    assert resumed == [kept], resumed
    assert received(fresh_ingest, p) == big.stat().st_size - kept, "bytes the server had were sent again"
    assert client_resolve(fresh_ingest, p, "checkpoint", "best").version == 0


def test_a_300_mb_artifact_is_logged_with_bounded_emitter_memory(env, tmp_path):
    """The issue's case is 1 GB (python -m bench.artifacts); 300 MB keeps this test's disk and time in check:
    the emitter reads one 4 MiB chunk at a time, so its memory does not grow with the size."""
    p = project()
    files = [str(real_bytes(tmp_path / f"shard{i}.bin", 100, seed=i)) for i in range(3)]
    done = subprocess.run([sys.executable, "-c", TRAINER, p, *files], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PULSE_SYSTEM_INTERVAL": "0", "PULSE_FINISH_TIMEOUT": "600"}, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rss_mb = int(done.stdout.split("RSS_KB")[1].split()[0]) / 1024
    assert rss_mb <= 200, f"the emitter peaked at {rss_mb:.0f} MB"
    assert received(env, p) == 300 << 20
    assert "1 artifact version(s) stored: checkpoint:v0" in done.stderr


def test_a_key_for_one_project_can_never_read_or_write_another_projects_artifacts(tmp_path):
    server = Ingest(tmp_path / "data", "--auth").start()
    try:
        admin = (server.data_dir / "admin-key").read_text().strip()

        def key(*flags: str) -> str:
            done = subprocess.run([sys.executable, "-m", "pulse.cli", "keys", "create", *flags], capture_output=True,
                                  text=True, cwd=ROOT, timeout=120,
                                  env={**os.environ, "PULSE_SERVER": server.address, "PULSE_API_KEY": admin})
            assert done.returncode == 0, done.stderr
            return done.stdout.strip().splitlines()[-1].split()[-1]

        key_a, key_b = key("--project", "team-a"), key("--project", "team-b")
        data = os.urandom(1000)
        digest = hashlib.sha256(data).hexdigest()
        b = ArtifactClient(server.address, key_b)
        upload_bytes(b, "team-b", data, digest, tmp_path)
        entries = [("w.bin", digest, 1000, "", "")]
        b.commit(pb.CommitRequest(project="team-b", name="secret", type="model", digest=manifest_digest(entries),
                                  entries=[pb.ManifestEntry(path="w.bin", sha256=digest, size=1000)]))
        a = ArtifactClient(server.address, key_a)
        for attempt in (lambda: a.resolve("team-b", "secret", ""), lambda: a.have("team-b", [digest]),
                        lambda: a.use("team-b", "secret", "", "team-a", "r1"),
                        lambda: a.commit(pb.CommitRequest(project="team-b", name="x", type="t")),
                        lambda: upload_bytes(a, "team-b", data, digest, tmp_path),
                        lambda: a.download("team-b", digest, 1000, tmp_path / "stolen")):
            with pytest.raises(ArtifactError) as refused:
                attempt()
            assert refused.value.code.name == "PERMISSION_DENIED", refused.value
        # Knowing the sha256 is not enough: team-a never uploaded those bytes, so it cannot have them.
        assert a.have("team-a", [digest]) == {digest: (False, 0)}
        with pytest.raises(ArtifactError, match="holds no blob") as hidden:
            a.download("team-a", digest, 1000, tmp_path / "stolen")
        assert hidden.value.code.name == "NOT_FOUND"
        entries_a = pb.CommitRequest(project="team-a", name="x", type="t", digest=manifest_digest(entries),
                                     entries=[pb.ManifestEntry(path="w.bin", sha256=digest, size=1000)])
        with pytest.raises(ArtifactError, match="were not uploaded"):
            a.commit(entries_a)
        script = """
            import emitter
            run = emitter.init(project="team-a")
            try:
                run.use_artifact("team-b/secret:latest")
            except PermissionError as exc:
                print("REFUSED", exc)
            run.finish()
        """
        done = run_script(script, env={"PULSE_SERVER": server.address, "PULSE_API_KEY": key_a,
                                       "PULSE_DIR": str(tmp_path / "pulse"), "PULSE_SYSTEM_INTERVAL": "0"})
        assert "REFUSED" in done.stdout and "is for project 'team-a', not 'team-b'" in done.stdout, done.stderr
    finally:
        server.stop()


def test_an_s3_blob_store_takes_artifacts_and_s3_references_keep_their_etag(tmp_path, monkeypatch):
    """Blobs go to s3://bucket/prefix (boto3's multipart transfer past 8 MiB), and come back by range."""
    from fixtures.s3_server import serve_s3

    with serve_s3() as s3:
        for variable, value in s3.env().items():
            monkeypatch.setenv(variable, value)
        bucket = f"b-{uuid.uuid4().hex[:10]}"
        s3.boto().create_bucket(Bucket=bucket)
        s3.boto().put_object(Bucket=bucket, Key="raw/a.txt", Body=b"raw a")
        s3.boto().put_object(Bucket=bucket, Key="raw/sub/b.txt", Body=b"raw b")
        server = Ingest(tmp_path / "data", "--blobs", f"s3://{bucket}/pulse").start()
        try:
            monkeypatch.setenv("PULSE_SERVER", server.address)
            monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))
            monkeypatch.setenv("PULSE_SYSTEM_INTERVAL", "0")
            p = project()
            big = real_bytes(tmp_path / "ckpt.bin", 12)
            run = emitter.init(project=p)
            artifact = emitter.Artifact("model", type="model")
            artifact.add_file(big)
            refs = artifact.add_reference(f"s3://{bucket}/raw", name="raw")
            assert sorted((e.path, e.size) for e in refs) == [("raw/a.txt", 5), ("raw/sub/b.txt", 5)]
            assert all(e.ref_digest == hashlib.md5(b"raw a" if e.path == "raw/a.txt" else b"raw b").hexdigest()
                       for e in refs)  # a single-part object's ETag is its md5
            run.log_artifact(artifact).wait(120)
            digest = sha(big)
            stored = s3.boto().get_object(Bucket=bucket, Key=f"pulse/{digest[:2]}/{digest}.bin")["Body"].read()
            assert hashlib.sha256(stored).hexdigest() == digest
            root = Path(run.use_artifact("model:latest").download(str(tmp_path / "copy")))
            assert sha(root / "ckpt.bin") == digest and (root / "raw" / "sub" / "b.txt").read_bytes() == b"raw b"
            run.finish()
        finally:
            server.stop()
