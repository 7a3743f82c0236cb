"""`emitter.Artifact`: W&B's artifact object, a versioned set of files named by their sha256.

    artifact = emitter.Artifact("mnist", type="dataset", metadata={"rows": 70000})
    artifact.add_file("train.csv")
    artifact.add_dir("images/", name="images")
    with artifact.new_file("labels.txt") as f:
        f.write("0 1 2 3 4 5 6 7 8 9")
    artifact.add_reference("s3://bucket/raw/mnist.tar.gz")   # recorded, not uploaded
    run.log_artifact(artifact, aliases=["best"])              # v0, v1, ... on the server

    model = run.use_artifact("mnist:latest")                  # or "mnist:v3", "other-project/mnist:best"
    root = model.download()                                   # ./artifacts/mnist:v3, every sha256 checked

Each file is hashed (sha256, 4 MiB at a time: a file is never held in memory)
when it is added. A file up to `PULSE_ARTIFACT_STAGE_MAX_MB` (default 64) is
copied, while it is hashed, to a staging directory under PULSE_DIR, as W&B
copies to its staging directory: what is uploaded is what was added, even if
the file is changed or deleted afterwards. A larger file (a checkpoint) is
uploaded from where it is, so a GB checkpoint costs no second copy on disk; if
it changes before its upload, the upload is refused by its sha256 and the
artifact is reported as not uploaded, never stored with other bytes. W&B's
`policy="immutable"` copies nothing.

The manifest digest is the sha256 of the canonical manifest
(pulse/artifact_manifest.py), where W&B takes an md5 over "path:digest" lines.
Logging, uploading and using are in emitter/artifact_jobs.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote, unquote, urlparse

from pulse.artifact_manifest import MAX_METADATA_BYTES, manifest_digest, name_problem, path_problem

CHUNK_BYTES = 4 << 20
DEFAULT_STAGE_MAX_MB = 64


class ArtifactNotLoggedError(RuntimeError):
    """The artifact has no version yet: log it (and, offline, `pulse sync` it) first."""


@dataclass
class ArtifactEntry:
    """One file of an artifact: W&B's ArtifactManifestEntry.

    `digest` is the sha256 of a file, the ETag or sha256 of a reference; `ref` the
    reference's URI (None for an uploaded file).
    """

    path: str
    sha256: str
    size: int
    ref_uri: str = ""
    ref_digest: str = ""
    local_path: str = ""  # where the bytes are on this machine (a staged copy, or the file itself)
    staged: bool = False  # local_path is a copy of ours, in the artifact's staging directory
    _artifact: Any = None

    @property
    def digest(self) -> str:
        return self.sha256 or self.ref_digest

    @property
    def ref(self) -> str | None:
        return self.ref_uri or None

    def ref_url(self) -> str:
        return self.ref_uri

    def download(self, root: str | None = None) -> str:
        """Download this one file (sha256-checked) under `root` (default: the artifact's); its path."""
        if self._artifact is None:
            raise ArtifactNotLoggedError(f"{self.path} belongs to no logged artifact")
        from .artifact_jobs import download_entries

        root_path = Path(root) if root else self._artifact._default_root()
        download_entries(self._artifact, [self], root_path)
        return str(root_path / self.path)

    def manifest_tuple(self) -> tuple[str, str, int, str, str]:
        return (self.path, self.sha256, self.size, self.ref_uri, self.ref_digest)


class Artifact:
    """A set of files (and references) logged as one version: W&B's `wandb.Artifact`.

    A new Artifact is a draft: add files, then `run.log_artifact(artifact)`. After
    logging it is frozen; `wait()` blocks until the server has committed it, and
    `version`, `aliases` and `name` ("mnist:v3") then say what it became. One
    fetched by `run.use_artifact(...)` is committed already.
    """

    def __init__(self, name: str, type: str, description: str | None = None,
                 metadata: dict[str, Any] | None = None, incremental: bool = False, use_as: str | None = None) -> None:
        for value, what in ((name, "artifact name"), (type, "artifact type")):
            if problem := name_problem(value, what):
                raise ValueError(problem)
        self._source_name = name
        self.type = type
        self.description = description or ""
        self._metadata: dict[str, Any] = {}
        self.metadata = metadata or {}
        self._entries: dict[str, ArtifactEntry] = {}
        self._lock = threading.Lock()
        self._stage: Path | None = None
        self._final = False
        # set when logged or fetched (emitter/artifact_jobs.py)
        self._state = "draft"  # draft -> logging -> committed | failed; or committed when fetched
        self._done = threading.Event()
        self._error = ""
        self._project = ""
        self._version: int | None = None
        self._aliases: list[str] = []
        self._created_by = ""
        self._offline = False
        self._connection: Any = None  # (server, api_key, tls_ca) for downloads

    # -- properties (W&B's) ---------------------------------------------------

    @property
    def name(self) -> str:
        """"mnist" before it is logged, "mnist:v3" once it has a version (as in W&B)."""
        return f"{self._source_name}:v{self._version}" if self._version is not None else self._source_name

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def project(self) -> str:
        self._need_version("project")
        return self._project

    @property
    def qualified_name(self) -> str:
        return f"{self.project}/{self.name}"

    @property
    def version(self) -> str:
        """"v3". Waits for a logged artifact's commit; ArtifactNotLoggedError for a draft or an offline run."""
        self._need_version("version")
        return f"v{self._version}"

    @property
    def aliases(self) -> list[str]:
        """The aliases pointing at this version ("latest", "best", ...), as the server last said."""
        self._need_version("aliases")
        return list(self._aliases)

    @property
    def metadata(self) -> dict[str, Any]:
        return self._metadata

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"metadata must be a dict, not {type(value).__name__}")
        text = json.dumps(value, default=str)
        if len(text.encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {len(text.encode())} bytes of JSON; the limit is {MAX_METADATA_BYTES}")
        self._metadata = json.loads(text)

    @property
    def digest(self) -> str:
        """The sha256 of the canonical manifest: equal digests, equal files."""
        with self._lock:
            return manifest_digest(e.manifest_tuple() for e in self._entries.values())

    @property
    def size(self) -> int:
        with self._lock:
            return sum(e.size for e in self._entries.values())

    @property
    def file_count(self) -> int:
        return len(self._entries)

    @property
    def created_by(self) -> str:
        """The id of the run that logged this version ("" if none)."""
        self._need_version("created_by")
        return self._created_by

    @property
    def manifest(self) -> Manifest:
        return Manifest(self)

    @property
    def state(self) -> str:
        return {"draft": "PENDING", "logging": "PENDING", "committed": "COMMITTED", "failed": "FAILED"}[self._state]

    def is_draft(self) -> bool:
        return self._state == "draft"

    def files(self) -> list[ArtifactEntry]:
        """Every entry, in path order."""
        with self._lock:
            return [self._entries[path] for path in sorted(self._entries)]

    def get_entry(self, name: str) -> ArtifactEntry:
        """The entry at path `name`; KeyError if there is none."""
        entry = self._entries.get(name)
        if entry is None:
            raise KeyError(f"artifact {self.name} has no file {name!r}")
        return entry

    get_path = get_entry  # W&B's older name

    def wait(self, timeout: float | None = None) -> Artifact:
        """Block until the server committed this logged artifact; raise if it could not be."""
        if self._state == "draft":
            raise ArtifactNotLoggedError(f"artifact {self.name!r} is not logged: run.log_artifact(artifact) first")
        if self._offline and not self._done.is_set():
            raise ArtifactNotLoggedError(f"artifact {self.name!r} was logged offline: its version is given when "
                                         "`pulse sync` uploads it")
        if not self._done.wait(timeout):
            raise TimeoutError(f"artifact {self.name!r} is not committed after {timeout} s")
        if self._state == "failed":
            raise RuntimeError(f"artifact {self._source_name!r} was not stored: {self._error}")
        return self

    def download(self, root: str | None = None, allow_missing_references: bool = False, **_: Any) -> str:
        """Download every file under `root` (default `./artifacts/<name>:v<N>`, or $PULSE_ARTIFACT_DIR/...),
        each checked against its sha256; references are fetched from their URI. Returns the root."""
        self._need_version("download")
        from .artifact_jobs import download_entries

        root_path = Path(root) if root else self._default_root()
        download_entries(self, self.files(), root_path, allow_missing_references=allow_missing_references)
        return str(root_path)

    def _default_root(self) -> Path:
        return Path(os.environ.get("PULSE_ARTIFACT_DIR") or "artifacts") / self.name

    def _need_version(self, what: str) -> None:
        if self._version is None:
            self.wait()

    # -- adding (drafts only) -------------------------------------------------

    def add_file(self, local_path: str | os.PathLike, name: str | None = None, is_tmp: bool = False,
                 skip_cache: bool | None = None, policy: str = "mutable", overwrite: bool = False) -> ArtifactEntry:
        """Add one file as `name` (default: its base name). `policy="immutable"` never copies it.

        Example: `artifact.add_file("ckpt/model.pt", name="model.pt")`
        """
        self._check_can_add()
        if policy not in ("mutable", "immutable"):
            raise ValueError(f"policy must be 'mutable' or 'immutable', not {policy!r}")
        path = Path(local_path)
        if not path.is_file():
            raise ValueError(f"add_file(): {str(local_path)!r} is not a file")
        logical = _logical(name if name is not None else path.name)
        self._check_new(logical, overwrite)
        stage = self._stage_dir() if policy == "mutable" and path.stat().st_size <= _stage_limit() else None
        sha, size, staged = hash_file(path, stage)
        if is_tmp:  # W&B: a temporary file's name is made from its digest
            folder, _, base = logical.rpartition("/")
            logical = (folder + "/" if folder else "") + sha[:20] + ("." + base.split(".", 1)[1] if "." in base else "")
        entry = ArtifactEntry(logical, sha, size, local_path=str(staged or path.resolve()), staged=staged is not None,
                              _artifact=self)
        with self._lock:
            self._entries[logical] = entry
        return entry

    def add_dir(self, local_path: str | os.PathLike, name: str | None = None, skip_cache: bool | None = None,
                policy: str = "mutable", merge: bool = False) -> None:
        """Add every file under a directory, at `name/relative path` (default: the artifact's root)."""
        self._check_can_add()
        root = Path(local_path)
        if not root.is_dir():
            raise ValueError(f"add_dir(): {str(local_path)!r} is not a directory")
        prefix = _logical(name) + "/" if name else ""
        for folder, dirs, files in os.walk(root, followlinks=True):
            dirs.sort()
            for file in sorted(files):
                physical = Path(folder) / file
                relative = physical.relative_to(root).as_posix()
                self.add_file(physical, name=prefix + relative, policy=policy, overwrite=merge)

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "w", encoding: str | None = None) -> Iterator[IO]:
        """Open a new file that is added to the artifact as `name` when the block ends.

        Example:
            with artifact.new_file("config.json") as f:
                json.dump(config, f)
        """
        self._check_can_add()
        logical = _logical(name)
        self._check_new(logical, False)
        if "r" in mode and "+" not in mode:
            raise ValueError(f"new_file() writes a file: mode {mode!r} cannot")
        path = self._stage_dir() / "new" / secrets.token_hex(8) / logical.rsplit("/", 1)[-1]
        path.parent.mkdir(parents=True)
        with open(path, mode, encoding=encoding if "b" not in mode else None) as f:
            yield f
        sha, size, _ = hash_file(path, None)
        with self._lock:
            self._entries[logical] = ArtifactEntry(logical, sha, size, local_path=str(path), staged=True,
                                                   _artifact=self)

    def add_reference(self, uri: str | ArtifactEntry, name: str | None = None, checksum: bool = True,
                      max_objects: int | None = None) -> list[ArtifactEntry]:
        """Record a file:// or s3:// URI (a file, a directory, an object or a prefix) without uploading it.

        With `checksum`, a file's sha256 and an S3 object's ETag are kept, so a download
        that finds other bytes says so. Example: `artifact.add_reference("s3://data/imagenet/val")`
        """
        self._check_can_add()
        uri = uri.ref_uri if isinstance(uri, ArtifactEntry) else str(uri)
        scheme = urlparse(uri).scheme
        if scheme == "file":
            found = _file_references(uri, name, checksum, max_objects)
        elif scheme == "s3":
            from .artifact_refs import s3_references

            found = s3_references(uri, name, checksum, max_objects)
        else:
            raise ValueError(f"add_reference(): {uri!r} must be a file:// or s3:// URI (use add_file for local files)")
        entries = []
        for path, size, digest, ref in found:
            logical = _logical(path)
            self._check_new(logical, True)
            entry = ArtifactEntry(logical, "", size, ref_uri=ref, ref_digest=digest, _artifact=self)
            with self._lock:
                self._entries[logical] = entry
            entries.append(entry)
        return entries

    def remove(self, item: str | ArtifactEntry) -> None:
        """Remove a file (or every file under a folder) from a draft."""
        self._check_can_add()
        path = item.path if isinstance(item, ArtifactEntry) else _logical(str(item))
        with self._lock:
            gone = [p for p in self._entries if p == path or p.startswith(path + "/")]
            if not gone:
                raise FileNotFoundError(f"artifact {self.name!r} has no file or folder {path!r}")
            for p in gone:
                del self._entries[p]

    def _check_can_add(self) -> None:
        if self._final:
            raise ValueError(f"artifact {self.name!r} is logged and can no longer change; make a new Artifact "
                             "(the same name makes its next version)")

    def _check_new(self, logical: str, overwrite: bool) -> None:
        if not overwrite and logical in self._entries:
            raise ValueError(f"artifact {self._source_name!r} already has a file {logical!r} "
                             "(overwrite=True replaces it)")

    def _stage_dir(self) -> Path:
        """This draft's staging directory, removed with the object (a logged copy is linked elsewhere)."""
        if self._stage is None:
            from .settings import Settings

            stage = Settings.resolve().dir.resolve() / "artifacts" / "staging" / secrets.token_hex(8)
            stage.mkdir(parents=True)
            self._stage = stage
            weakref.finalize(self, shutil.rmtree, str(stage), True)
        return self._stage

    def __repr__(self) -> str:
        return f"<Artifact {self.name} ({self.type}, {len(self._entries)} files)>"


class Manifest:
    """W&B's artifact.manifest: `entries` by path, and the digest."""

    def __init__(self, artifact: Artifact) -> None:
        self.entries = {entry.path: entry for entry in artifact.files()}
        self.digest = manifest_digest(e.manifest_tuple() for e in self.entries.values())

    def to_manifest_json(self) -> dict[str, Any]:
        return {"version": 1, "digest": self.digest, "contents": {
            p: {"digest": e.digest, "size": e.size, **({"ref": e.ref_uri} if e.ref_uri else {})}
            for p, e in self.entries.items()}}


def hash_file(path: Path, stage: Path | None) -> tuple[str, int, Path | None]:
    """(sha256, size, the staged copy or None), reading 4 MiB at a time; with `stage`, copied while hashed."""
    digest, size = hashlib.sha256(), 0
    out = None
    if stage is not None:
        temporary = stage / f".{secrets.token_hex(8)}.tmp"
        out = open(temporary, "wb")
    try:
        with open(path, "rb") as f:
            while block := f.read(CHUNK_BYTES):
                digest.update(block)
                size += len(block)
                if out is not None:
                    out.write(block)
    except BaseException:
        if out is not None:
            out.close()
            os.unlink(out.name)
        raise
    sha = digest.hexdigest()
    if out is None:
        return sha, size, None
    out.close()
    staged = stage / sha
    os.replace(out.name, staged)
    return sha, size, staged


def _stage_limit() -> int:
    return int(float(os.environ.get("PULSE_ARTIFACT_STAGE_MAX_MB") or DEFAULT_STAGE_MAX_MB) * (1 << 20))


def _logical(name: str | os.PathLike) -> str:
    """An artifact path from what a user wrote: '/'-separated, no leading './'; ValueError if it can't be one."""
    text = os.fspath(name).replace(os.sep, "/")
    while text.startswith("./"):
        text = text[2:]
    text = text.rstrip("/")
    if problem := path_problem(text):
        raise ValueError(problem)
    return text


def _file_references(uri: str, name: str | None, checksum: bool,
                     max_objects: int | None) -> list[tuple[str, int, str, str]]:
    """(path, size, sha256 or "", uri) for a file:// URI: one file, or every file under a directory."""
    local = Path(unquote(urlparse(uri).path))
    if local.is_file():
        digest = hash_file(local, None)[0] if checksum else ""
        return [(name or local.name, local.stat().st_size, digest, uri)]
    if not local.is_dir():
        raise ValueError(f"add_reference(): {uri!r} names no file or directory on this machine")
    found = []
    for folder, dirs, files in os.walk(local):
        dirs.sort()
        for file in sorted(files):
            physical = Path(folder) / file
            relative = physical.relative_to(local).as_posix()
            digest = hash_file(physical, None)[0] if checksum else ""
            found.append(((name + "/" if name else "") + relative, physical.stat().st_size, digest,
                          "file://" + quote(str(physical))))
            if max_objects and len(found) >= max_objects:
                return found
    return found
