"""A run's artifacts: `log_artifact`, `use_artifact`, `save`, and what finish() and `pulse sync` do with them.

`Run.log_artifact` / `use_artifact` / `save` and `Run.finish` call these
functions; the run's artifact state (its uploader thread, its saved files) is
made on first use, so a run that logs no artifact starts no thread.

Run files (`emitter.save`, W&B semantics): the files matching the glob are kept as
versions of an artifact of type `run-files` named `run-<run id>-files`, alias
`latest`, paths relative to `base_path` (default: the current directory, or the
glob's directory when it is absolute). `policy="now"` stores them at once,
`"end"` at finish(), `"live"` at once, again whenever they change (checked every
`PULSE_SAVE_INTERVAL` seconds, default 5) and at finish(). Each change makes a
version holding every saved file; unchanged files are never sent twice.
"""

from __future__ import annotations

import glob as globbing
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulse.artifact_manifest import alias_problem, name_problem

from .artifact_jobs import Job, Uploader, artifacts_dir, fetched, pending_jobs, upload_job, write_job
from .artifact_upload import ArtifactClient, ArtifactError, Stopped
from .artifacts import Artifact, ArtifactEntry, ArtifactNotLoggedError, _stage_limit, hash_file

log = logging.getLogger("pulse")
_states: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()
POLICIES = ("live", "now", "end")


class RunArtifacts:
    """One run's uploader (online) or list of spooled jobs (offline), and its saved files."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.pulse_dir = run.settings.dir.resolve()
        s = run.settings
        self.connection = (s.server, s.api_key, s.tls_ca)
        self.uploader = Uploader(s.server, s.api_key, s.tls_ca, self.pulse_dir) if run.mode == "online" else None
        self.spooled: list[Job] = []
        self.files = RunFiles(self)
        if self.uploader is not None:
            self.uploader.polls.append(self.files.poll)

    def log(self, artifact: Artifact, aliases: list[str], direction: str = "output") -> Artifact:
        artifact._final = True
        artifact._state, artifact._error = "logging", ""
        artifact._done.clear()
        job = write_job(self.pulse_dir, artifact, self.run.project, self.run.id, aliases, direction)
        if self.uploader is not None:
            self.uploader.submit(job)
        else:
            artifact._offline = True
            os.close(job.lock_fd)
            job.lock_fd = -1
            self.spooled.append(job)
        return artifact


def _state(run: Any) -> RunArtifacts:
    if getattr(run, "_finished", False):
        raise RuntimeError(f"run {run.id} is finished; artifacts are logged by a live run")
    with _states_lock:
        state = _states.get(run)
        if state is None:
            state = _states[run] = RunArtifacts(run)
        return state


def log_artifact(run: Any, artifact_or_path: Any, name: str | None = None, type: str | None = None,
                 aliases: list[str] | None = None, tags: list[str] | None = None) -> Artifact:
    """See `Run.log_artifact`."""
    if isinstance(artifact_or_path, Artifact):
        artifact = artifact_or_path
    else:
        path = Path(os.fspath(artifact_or_path))
        artifact = Artifact(name or f"run-{run.id}-{_safe(path.name)}", type or "unspecified")
        if path.is_dir():
            artifact.add_dir(path)
        else:
            artifact.add_file(path)
    aliases = _aliases(aliases)
    if run.mode == "disabled":
        return artifact
    return _state(run).log(artifact, aliases)


def use_artifact(run: Any, artifact_or_name: Any, type: str | None = None, aliases: list[str] | None = None,
                 use_as: str | None = None) -> Artifact:
    """See `Run.use_artifact`."""
    if isinstance(artifact_or_name, Artifact):
        artifact = artifact_or_name
        if artifact.is_draft():  # W&B: a new artifact used as an input is stored, with no producer
            return artifact if run.mode == "disabled" else _state(run).log(artifact, _aliases(aliases), "input")
        project, name, ref = artifact.project, artifact._source_name, artifact.version
    else:
        project, name, ref = parse_reference(str(artifact_or_name), run.project)
    if run.mode != "online":
        raise ArtifactNotLoggedError(f"use_artifact({artifact_or_name!r}) needs the server; a {run.mode} run "
                                     "cannot look artifacts up")
    state = _state(run)
    client = ArtifactClient(*state.connection, deadline=time.monotonic() + _timeout())
    try:
        version = client.use(project, name, ref, run.project, run.id)
    except ArtifactError as exc:
        raise _user_error(exc, f"{project}/{name}:{ref or 'latest'}") from None
    except Stopped as exc:
        raise TimeoutError(f"use_artifact({artifact_or_name!r}): the server did not answer ({exc})") from None
    finally:
        client.close()
    found = fetched(version, state.connection)
    if type and found.type != type:
        raise ValueError(f"artifact {found.name} is of type {found.type!r}, not {type!r}")
    return found


def parse_reference(text: str, default_project: str) -> tuple[str, str, str]:
    """(project, name, ref) of "name", "name:alias", "name:v3", "project/name:ref" or "entity/project/name:ref"."""
    path, _, ref = text.partition(":")
    parts = path.split("/")
    if len(parts) > 3 or not all(parts):
        raise ValueError(f"{text!r} is not an artifact reference: use 'name', 'name:alias', 'name:v3' or "
                         "'project/name:alias'")
    name, project = parts[-1], parts[-2] if len(parts) > 1 else default_project
    if problem := name_problem(name):
        raise ValueError(problem)
    return project, name, ref


def _user_error(exc: ArtifactError, what: str) -> Exception:
    code = exc.code.name if exc.code else ""
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return PermissionError(f"{what}: {exc}")
    if code == "NOT_FOUND":
        return ValueError(f"{what}: {exc}")
    return exc


def _aliases(aliases: list[str] | None) -> list[str]:
    found = [aliases] if isinstance(aliases, str) else list(aliases or [])
    for alias in found:
        if alias != "latest" and (problem := alias_problem(alias)):
            raise ValueError(problem)
    return list(dict.fromkeys(found))


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:100] or "file"


def _timeout() -> float:
    return float(os.environ.get("PULSE_ARTIFACT_TIMEOUT") or 300)


# -- emitter.save: run files ---------------------------------------------------


@dataclass
class _Glob:
    pattern: str  # absolute
    base: Path
    policy: str


class RunFiles:
    """The run's saved files, as versions of its `run-<id>-files` artifact."""

    def __init__(self, state: RunArtifacts) -> None:
        self.state = state
        self.globs: list[_Glob] = []
        self.entries: dict[str, ArtifactEntry] = {}
        self._seen: dict[str, tuple[int, int]] = {}  # absolute path -> (mtime_ns, size) when last stored
        self._lock = threading.Lock()
        self._holder: Artifact | None = None  # owns the staging directory of the files' copies
        self._interval = float(os.environ.get("PULSE_SAVE_INTERVAL") or 5)
        self._last_poll = time.monotonic()

    def add(self, glob_str: str, base_path: str | None, policy: str) -> list[str]:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
        if base_path is None:
            base_path = os.path.dirname(glob_str) if os.path.isabs(glob_str) else "."
        base = Path(base_path).resolve()
        pattern = glob_str if os.path.isabs(glob_str) else str(base / glob_str)
        if os.path.relpath(pattern, base).startswith(".."):
            raise ValueError(f"save({glob_str!r}): the glob may not walk above base_path {str(base)!r}")
        with self._lock:
            self.globs.append(_Glob(pattern, base, policy))
        matched = sorted(p for p in globbing.glob(pattern, recursive=True) if os.path.isfile(p))
        if policy != "end":
            self.snapshot([self.globs[-1]])
        return matched

    def poll(self) -> None:
        if time.monotonic() - self._last_poll >= self._interval:
            self._last_poll = time.monotonic()
            self.snapshot([g for g in self.globs if g.policy == "live"])

    def snapshot(self, globs: list[_Glob]) -> None:
        """Store a new version if a file of `globs` is new or changed since it was last stored."""
        with self._lock:
            changed = False
            for g in globs:
                for path in sorted(globbing.glob(g.pattern, recursive=True)):
                    if not os.path.isfile(path):
                        continue
                    stat = os.stat(path)
                    key = (stat.st_mtime_ns, stat.st_size)
                    if self._seen.get(path) == key:
                        continue
                    logical = Path(os.path.relpath(path, g.base)).as_posix()
                    if self._holder is None:
                        self._holder = Artifact(f"run-{self.state.run.id}-files", "run-files")
                    stage = self._holder._stage_dir() if stat.st_size <= _stage_limit() else None
                    sha, size, staged = hash_file(Path(path), stage)
                    self._seen[path] = key
                    old = self.entries.get(logical)
                    if old is not None and old.sha256 == sha:
                        continue
                    self.entries[logical] = ArtifactEntry(logical, sha, size, local_path=str(staged or path),
                                                          staged=staged is not None)
                    changed = True
            if not changed:
                return
            artifact = Artifact(f"run-{self.state.run.id}-files", "run-files")
            artifact._entries = dict(self.entries)
            self.state.log(artifact, [])

    def close(self) -> None:
        """At finish: the live and end files as they are now."""
        self.snapshot([g for g in self.globs if g.policy in ("live", "end")])


def save(run: Any, glob_str: str | os.PathLike, base_path: str | os.PathLike | None = None,
         policy: str = "live") -> list[str]:
    """See `Run.save`."""
    if run.mode == "disabled":
        return []
    return _state(run).files.add(os.fspath(glob_str), None if base_path is None else os.fspath(base_path), policy)


# -- finish() and pulse sync -----------------------------------------------------


def finish_artifacts(run: Any, timeout: float) -> None:
    """At finish(): store the saved files' last versions, wait up to `timeout` for the uploads, say what happened."""
    with _states_lock:
        state = _states.pop(run, None)
    if state is None:
        return
    try:
        state.files.close()
    except Exception:
        log.exception("pulse: storing the run's saved files failed")
    where = artifacts_dir(state.pulse_dir) / "pending"
    if state.uploader is None:
        if state.spooled:
            log.info("pulse: %d artifact(s) of this %s run are kept in %s; `pulse sync` uploads them",
                     len(state.spooled), run.mode, where)
        return
    left = state.uploader.drain(timeout)
    done = state.uploader.committed
    if done:
        names = ", ".join(f"{v.name}:v{v.version}" + (" (unchanged)" if v.existed else "") for v in done[:5])
        log.info("pulse: %d artifact version(s) stored: %s%s; %s uploaded", len(done), names,
                 " ..." if len(done) > 5 else "", _size(state.uploader.uploaded_bytes))
    if left:
        log.warning("pulse: %d artifact(s) (%s) were NOT uploaded within the finish timeout: they are kept in %s; "
                    "upload them with `pulse sync`", len(left), _size(sum(j.size for j in left)), where)
    if state.uploader.failed:
        log.error("pulse: %d artifact(s) were refused and not stored: %s", len(state.uploader.failed),
                  "; ".join(f"{name}: {why}" for name, why in state.uploader.failed[:3]))


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


@dataclass
class SyncedJob:
    directory: Path
    files: int
    uploaded: bool
    reason: str = ""
    busy: bool = False
    version: str = ""


def sync_artifacts(pulse_dir: Path, server: str, api_key: str, tls_ca: str, timeout: float) -> list[SyncedJob]:
    """Upload every pending artifact job under `pulse_dir` (`pulse sync`); what became of each."""
    import json

    from .artifact_jobs import _lock, set_aside

    results = []
    deadline = time.monotonic() + timeout
    for directory in pending_jobs(pulse_dir):
        fd = _lock(directory)
        if fd < 0:
            results.append(SyncedJob(directory, 0, False, "in use by another process, skipped", busy=True))
            continue
        job = Job(directory, json.loads((directory / "job.json").read_text()), lock_fd=fd)
        client = ArtifactClient(server, api_key, tls_ca, deadline=deadline)
        try:
            version = upload_job(client, job)
            results.append(SyncedJob(directory, len(job.spec["entries"]), True,
                                     version=f"{version.name}:v{version.version}"))
        except Stopped as exc:
            results.append(SyncedJob(directory, len(job.spec["entries"]), False, f"not uploaded in time: {exc}"))
        except ArtifactError as exc:
            where = set_aside(job, pulse_dir, str(exc))
            results.append(SyncedJob(directory, len(job.spec["entries"]), False, f"refused: {exc} (moved to {where})"))
        finally:
            client.close()
            if job.lock_fd >= 0:
                os.close(job.lock_fd)
    return results
