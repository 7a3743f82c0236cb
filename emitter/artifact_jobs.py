"""Logging artifacts: each logged artifact is a job on disk, uploaded by a thread of the run's own.

`run.log_artifact(artifact)` writes the job, `PULSE_DIR/artifacts/pending/<id>/`:
`job.json` (project, run, name, type, metadata, aliases, the manifest and where
each file's bytes are) and `files/`, hard links to (or copies of) the staged
copies of small files; large files are read from where they are. Only then does
it return: the job survives a crash, an unreachable server, an offline run and
finish()'s timeout, and `pulse sync` uploads what is left (`sync_artifacts`).

The uploader (one thread per run, never the metric sender) takes jobs in order:
HaveBlobs, the missing blobs (emitter/artifact_upload.py), CommitArtifact, then
the job's directory goes. A job the server refuses for good (a key, a file that
changed before its upload) moves to `PULSE_DIR/artifacts/failed/` with a note.
A job is held by an flock on its directory's `lock` while a process works on
it, so a `pulse sync` beside a live run never uploads the same job twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulse.v1 import artifacts_pb2 as pb

from .artifact_upload import ArtifactClient, ArtifactError, Stopped
from .artifacts import Artifact, ArtifactEntry

log = logging.getLogger("pulse")


@dataclass
class Job:
    directory: Path
    spec: dict[str, Any]
    artifact: Artifact | None = None
    lock_fd: int = -1

    @property
    def label(self) -> str:
        return f"{self.spec['project']}/{self.spec['name']}"

    @property
    def size(self) -> int:
        return sum(e["size"] for e in self.spec["entries"] if not e["ref_uri"])


def artifacts_dir(pulse_dir: Path) -> Path:
    return pulse_dir / "artifacts"


def write_job(pulse_dir: Path, artifact: Artifact, project: str, run_id: str, aliases: list[str],
              direction: str = "output") -> Job:
    """Freeze `artifact` and write it as a pending job (locked by this process); the Job."""
    pending = artifacts_dir(pulse_dir) / "pending"
    directory = pending / f"{time.time_ns():020d}-{secrets.token_hex(4)}"
    files = directory / "files"
    files.mkdir(parents=True)
    entries = []
    for entry in artifact.files():
        local = entry.local_path
        if entry.staged:  # our copy: the job keeps its own link, the draft's staging dir may go
            kept = files / entry.sha256
            if not kept.exists():
                try:
                    os.link(local, kept)
                except OSError:
                    shutil.copyfile(local, kept)
            local = f"files/{entry.sha256}"
        entries.append({"path": entry.path, "sha256": entry.sha256, "size": entry.size, "ref_uri": entry.ref_uri,
                        "ref_digest": entry.ref_digest, "local": local})
    spec = {"project": project, "run_id": run_id, "name": artifact._source_name, "type": artifact.type,
            "description": artifact.description, "metadata": json.dumps(artifact.metadata), "aliases": aliases,
            "direction": direction, "digest": artifact.digest, "entries": entries,
            "created_at_us": time.time_ns() // 1000}
    job = Job(directory, spec, artifact)
    job.lock_fd = _lock(directory)
    temporary = directory / ".job.json.tmp"
    temporary.write_text(json.dumps(spec))
    os.replace(temporary, directory / "job.json")  # the job exists once job.json does
    return job


def _lock(directory: Path) -> int:
    """An exclusive flock on the job's `lock` file; -1 if another process holds it."""
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return -1
    return fd


def _release(job: Job) -> None:
    if job.lock_fd >= 0:
        os.close(job.lock_fd)
        job.lock_fd = -1


def upload_job(client: ArtifactClient, job: Job) -> pb.ArtifactVersion:
    """Send a job's missing blobs, commit it, remove its directory; the version. Raises ArtifactError
    (refused for good) or Stopped (out of time: the job stays)."""
    spec = job.spec
    blobs: dict[str, dict] = {}
    for entry in spec["entries"]:
        if not entry["ref_uri"]:
            blobs.setdefault(entry["sha256"], entry)
    for attempt in range(3):  # a commit that finds a blob gone (deleted from the store) uploads it again
        have = client.have(spec["project"], list(blobs))
        for sha, entry in blobs.items():
            present, offset = have[sha]
            if not present:
                local = Path(entry["local"])  # absolute: the file itself; relative: a copy in the job
                source = local if local.is_absolute() else job.directory / local
                client.upload(spec["project"], sha, entry["size"], source, offset)
        request = pb.CommitRequest(
            project=spec["project"], name=spec["name"], type=spec["type"], description=spec["description"],
            metadata_json=spec["metadata"], digest=spec["digest"], aliases=spec["aliases"], run_id=spec["run_id"],
            direction=spec["direction"],
            entries=[pb.ManifestEntry(path=e["path"], sha256=e["sha256"], size=e["size"], ref_uri=e["ref_uri"],
                                      ref_digest=e["ref_digest"]) for e in spec["entries"]])
        try:
            version = client.commit(request)
            break
        except ArtifactError as exc:
            if exc.code is None or exc.code.name != "FAILED_PRECONDITION" or attempt == 2:
                raise
    shutil.rmtree(job.directory, ignore_errors=True)
    _release(job)
    return version


def set_aside(job: Job, pulse_dir: Path, reason: str) -> Path:
    """Move a job the server refused for good to PULSE_DIR/artifacts/failed/, with a note; where it went."""
    failed = artifacts_dir(pulse_dir) / "failed"
    failed.mkdir(parents=True, exist_ok=True)
    target = failed / job.directory.name
    (job.directory / "note.txt").write_text(reason + "\n")
    os.replace(job.directory, target)
    _release(job)
    return target


def commit_into(artifact: Artifact | None, version: pb.ArtifactVersion, connection: tuple[str, str, str]) -> None:
    """What the server said of a version, onto the Artifact object the user holds."""
    if artifact is None:
        return
    artifact._project, artifact._version = version.project, version.version
    artifact._aliases = list(version.aliases)
    artifact._created_by = version.created_by_run
    artifact._connection = connection
    artifact._state = "committed"
    for entry in artifact.files():
        entry._artifact = artifact
    artifact._done.set()


def fetched(version: pb.ArtifactVersion, connection: tuple[str, str, str]) -> Artifact:
    """An Artifact for a version the server sent (ResolveArtifact, UseArtifact), manifest included."""
    artifact = Artifact(version.name, version.type, version.description or None,
                        json.loads(version.metadata_json or "{}"))
    for e in version.entries:
        artifact._entries[e.path] = ArtifactEntry(e.path, e.sha256, e.size, e.ref_uri, e.ref_digest, _artifact=artifact)
    artifact._final = True
    commit_into(artifact, version, connection)
    return artifact


class Uploader:
    """The run's artifact thread: uploads queued jobs in order; `drain` waits for them (finish())."""

    def __init__(self, server: str, api_key: str, tls_ca: str, pulse_dir: Path) -> None:
        self.connection = (server, api_key, tls_ca)
        self.pulse_dir = pulse_dir
        self._stop = threading.Event()
        self.client = ArtifactClient(server, api_key, tls_ca, stop=self._stop)
        self._jobs: deque[Job] = deque()
        self._wake = threading.Condition()
        self._busy = False
        self.committed: list[pb.ArtifactVersion] = []
        self.failed: list[tuple[str, str]] = []  # (artifact, why)
        self.uploaded_bytes = 0
        self.polls: list[Any] = []  # callables run between jobs (emitter.save's live files)
        self._thread = threading.Thread(target=self._run, name="pulse-artifacts", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._wake:
            self._jobs.append(job)
            self._wake.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                if not self._jobs:
                    self._wake.wait(1.0)
                if not self._jobs:
                    job = None
                else:
                    job, self._busy = self._jobs[0], True
            if job is None:
                for poll in list(self.polls):
                    _quietly(poll)
                continue
            try:
                before = self.client.sent_bytes
                version = upload_job(self.client, job)
                self.uploaded_bytes += self.client.sent_bytes - before
                self.committed.append(version)
                commit_into(job.artifact, version, self.connection)
            except Stopped:
                return
            except ArtifactError as exc:
                where = set_aside(job, self.pulse_dir, str(exc))
                self.failed.append((job.label, str(exc)))
                log.error("pulse: artifact %s was not stored: %s (kept in %s)", job.label, exc, where)
                if job.artifact is not None:
                    job.artifact._state, job.artifact._error = "failed", str(exc)
                    job.artifact._done.set()
            except Exception as exc:  # a bug or a disk: counted and said once, never raised into training
                log.exception("pulse: uploading artifact %s failed; it stays in %s for `pulse sync`", job.label,
                              job.directory)
                self.failed.append((job.label, repr(exc)))
                _release(job)
            with self._wake:
                self._jobs.popleft()
                self._busy = False
                self._wake.notify_all()

    def drain(self, timeout: float) -> list[Job]:
        """Wait up to `timeout` for the queued jobs, then stop; the jobs left (on disk, for `pulse sync`)."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while (self._jobs or self._busy) and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(min(left, 0.5))
            left_over = list(self._jobs)
        self._stop.set()
        self.client.close()
        self._thread.join(5.0)
        for job in left_over:
            _release(job)
        return left_over


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception:
        log.exception("pulse: watching saved files failed")


def pending_jobs(pulse_dir: Path) -> list[Path]:
    pending = artifacts_dir(pulse_dir) / "pending"
    if not pending.is_dir():
        return []
    return sorted(p for p in pending.iterdir() if (p / "job.json").is_file())


def download_entries(artifact: Artifact, entries: list[ArtifactEntry], root: Path,
                     allow_missing_references: bool = False) -> None:
    """Fetch `entries` of a committed artifact under `root`; a file already there with the right sha256 stays."""
    from .artifact_refs import fetch_reference
    from .artifacts import hash_file

    server, api_key, tls_ca = artifact._connection or _default_connection()
    client = ArtifactClient(server, api_key, tls_ca, deadline=time.monotonic() + _download_timeout())
    try:
        for entry in entries:
            target = root / entry.path
            if target.is_file() and target.stat().st_size == entry.size and (
                    not entry.digest or hash_file(target, None)[0] in (entry.sha256, entry.ref_digest)):
                continue
            if entry.ref_uri:
                try:
                    fetch_reference(entry.ref_uri, entry.ref_digest, target)
                except FileNotFoundError:
                    if not allow_missing_references:
                        raise
            else:
                client.download(artifact.project, entry.sha256, entry.size, target)
    except Stopped as exc:
        raise TimeoutError(f"downloading {artifact.name}: the server did not answer ({exc})") from None
    finally:
        client.close()


def _download_timeout() -> float:
    return float(os.environ.get("PULSE_ARTIFACT_TIMEOUT") or 300)


def _default_connection() -> tuple[str, str, str]:
    from .settings import Settings

    settings = Settings.resolve()
    return settings.server, settings.api_key, settings.tls_ca
