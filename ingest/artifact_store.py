"""The artifact catalog in ClickHouse: versions, their files, aliases, lineage, and which blobs a project holds.

The tables are ingest/migrations/*/010[0-5]_artifact*.sql. A commit allocates the
next version of (project, name), or finds the version with the same manifest
digest, under a lock for that name in this process; its files are inserted before
its version row, so a version that can be read has its files. Aliases move in one
insert, stamped with one strictly increasing time, so each (project, name, alias)
row read with FINAL names exactly one version.

Across ingest replicas the lock is not shared: two replicas could both allocate
v3 of one name. So artifact RPCs go to one replica (deploy/cluster/envoy.yaml
routes /pulse.v1.Artifacts/ to the replica that owns the sweep controller), as
sweeps do.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import pyarrow as pa

from .storage import Store
from .validate import TS

LOCK_STRIPES = 64
U32, U64 = pa.uint32(), pa.uint64()


@dataclass
class VersionRow:
    project: str
    name: str
    version: int
    type: str
    digest: str
    description: str
    metadata: str
    size: int
    file_count: int
    created_by_run: str
    created_at_us: int
    aliases: list[str] = field(default_factory=list)
    existed: bool = False


@dataclass(frozen=True)
class Manifest:
    """What a CommitArtifact asks to record (validated by the service)."""

    project: str
    name: str
    type: str
    description: str
    metadata: str
    digest: str
    entries: list[tuple[str, str, int, str, str]]  # (path, sha256, size, ref_uri, ref_digest)
    aliases: list[str]
    run_id: str
    direction: str


class UnknownArtifact(LookupError):
    pass


class TypeMismatch(ValueError):
    pass


class Catalog:
    def __init__(self, store: Store) -> None:
        self._store = store
        # A lock per name would grow without bound; names hash onto a fixed set of locks instead.
        self._locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._clock_lock = threading.Lock()
        self._last_us = 0

    def _lock(self, project: str, name: str) -> threading.Lock:
        return self._locks[hash((project, name)) % LOCK_STRIPES]

    def _stamp(self) -> int:
        """Microseconds since the epoch, strictly increasing in this process: a later move always wins."""
        with self._clock_lock:
            self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
            return self._last_us

    # -- blobs ----------------------------------------------------------------

    def owned_blobs(self, project: str, shas: list[str]) -> set[str]:
        """Which of `shas` this project has uploaded."""
        if not shas:
            return set()
        rows = self._store.query_rows(
            "SELECT DISTINCT sha256 FROM artifact_blobs WHERE project = {p:String} AND sha256 IN {s:Array(String)}",
            {"p": project, "s": list(shas)})
        return {row[0] for row in rows}

    def record_blob(self, project: str, sha256: str, size: int) -> None:
        self._store.insert("artifact_blobs", pa.table({
            "project": [project], "sha256": [sha256], "size": pa.array([size], U64),
            "uploaded_at": pa.array([self._stamp()], TS)}))

    # -- versions -------------------------------------------------------------

    def commit(self, m: Manifest) -> VersionRow:
        """Record `m` as the next version of its name, or return the version it already is."""
        with self._lock(m.project, m.name):
            known_type = self._store.query_rows(
                "SELECT type FROM artifacts FINAL WHERE project = {p:String} AND name = {n:String}",
                {"p": m.project, "n": m.name})
            if known_type and known_type[0][0] != m.type:
                raise TypeMismatch(f"artifact {m.name!r} of project {m.project!r} is of type "
                                   f"{known_type[0][0]!r}; it cannot be logged as type {m.type!r}")
            found = self._store.query_rows(
                "SELECT min(version), count() FROM artifact_versions FINAL WHERE project = {p:String} "
                "AND name = {n:String} AND digest = {d:String}", {"p": m.project, "n": m.name, "d": m.digest})
            existed = bool(found and found[0][1])
            if existed:
                version = int(found[0][0])
            else:
                version = int(self._store.query_rows(
                    "SELECT if(count() = 0, 0, max(version) + 1) FROM artifact_versions WHERE project = {p:String} "
                    "AND name = {n:String}", {"p": m.project, "n": m.name})[0][0])
                self._insert_version(m, version)
            now = self._stamp()
            aliases = list(dict.fromkeys(["latest", *m.aliases]))
            self._store.insert("artifact_aliases", pa.table({
                "project": [m.project] * len(aliases), "name": [m.name] * len(aliases), "alias": aliases,
                "version": pa.array([version] * len(aliases), U32), "updated_at": pa.array([now] * len(aliases), TS)}))
        if m.run_id:
            self.record_use(m.project, m.name, version, m.project, m.run_id, m.direction)
        row = self.version(m.project, m.name, version)
        row.existed = existed
        return row

    def _insert_version(self, m: Manifest, version: int) -> None:
        now = self._stamp()
        n = len(m.entries)
        paths, shas, sizes, uris, digests = (list(column) for column in zip(*m.entries)) if n else ([],) * 5
        self._store.insert("artifact_files", pa.table({
            "project": [m.project] * n, "name": [m.name] * n, "version": pa.array([version] * n, U32),
            "path": paths, "sha256": shas, "size": pa.array(sizes, U64), "ref_uri": uris, "ref_digest": digests}))
        self._store.insert("artifacts", pa.table({
            "project": [m.project], "name": [m.name], "type": [m.type], "description": [m.description],
            "created_at": pa.array([now], TS), "updated_at": pa.array([now], TS)}))
        self._store.insert("artifact_versions", pa.table({
            "project": [m.project], "name": [m.name], "version": pa.array([version], U32), "type": [m.type],
            "digest": [m.digest], "description": [m.description], "metadata": [m.metadata or "{}"],
            "size": pa.array([sum(sizes)], U64), "file_count": pa.array([n], U32),
            "created_by_run": [m.run_id if m.direction == "output" else ""], "state": ["committed"],
            "created_at": pa.array([now], TS), "updated_at": pa.array([now], TS)}))

    def record_use(self, project: str, name: str, version: int, run_project: str, run_id: str,
                   direction: str = "input") -> None:
        self._store.insert("artifact_usage", pa.table({
            "project": [project], "name": [name], "version": pa.array([version], U32),
            "run_project": [run_project or project], "run_id": [run_id], "direction": [direction],
            "ts": pa.array([self._stamp()], TS)}))

    # -- reads ----------------------------------------------------------------

    def resolve(self, project: str, name: str, ref: str) -> VersionRow:
        """The version `ref` names: "vN", an alias, or "" for latest. UnknownArtifact if none."""
        from pulse.artifact_manifest import parse_version

        number = parse_version(ref) if ref else None
        if number is None:
            rows = self._store.query_rows(
                "SELECT version FROM artifact_aliases FINAL WHERE project = {p:String} AND name = {n:String} "
                "AND alias = {a:String}", {"p": project, "n": name, "a": ref or "latest"})
            if not rows:
                raise UnknownArtifact(self._missing(project, name, f"no alias {ref or 'latest'!r}"))
            number = int(rows[0][0])
        return self.version(project, name, number)

    def version(self, project: str, name: str, version: int) -> VersionRow:
        rows = self._store.query_rows(
            "SELECT type, digest, description, metadata, size, file_count, created_by_run, "
            "toUnixTimestamp64Micro(created_at) FROM artifact_versions FINAL "
            "WHERE project = {p:String} AND name = {n:String} AND version = {v:UInt32}",
            {"p": project, "n": name, "v": version})
        if not rows:
            raise UnknownArtifact(self._missing(project, name, f"no version v{version}"))
        kind, digest, description, metadata, size, count, run, created = rows[0]
        aliases = [row[0] for row in self._store.query_rows(
            "SELECT alias FROM artifact_aliases FINAL WHERE project = {p:String} AND name = {n:String} "
            "AND version = {v:UInt32} ORDER BY alias = 'latest' DESC, alias", {"p": project, "n": name, "v": version})]
        return VersionRow(project, name, version, kind, digest, description, metadata, int(size), int(count), run,
                          int(created), aliases)

    def entries(self, project: str, name: str, version: int) -> list[tuple[str, str, int, str, str]]:
        rows = self._store.query_rows(
            "SELECT path, sha256, size, ref_uri, ref_digest FROM artifact_files FINAL WHERE project = {p:String} "
            "AND name = {n:String} AND version = {v:UInt32} ORDER BY path", {"p": project, "n": name, "v": version})
        return [(path, sha, int(size), uri, digest) for path, sha, size, uri, digest in rows]

    def _missing(self, project: str, name: str, what: str) -> str:
        exists = self._store.query_rows(
            "SELECT count() FROM artifacts WHERE project = {p:String} AND name = {n:String}",
            {"p": project, "n": name})[0][0]
        if not exists:
            return f"project {project!r} has no artifact named {name!r}"
        return f"artifact {name!r} of project {project!r} has {what}"


def metadata_text(value: str) -> str:
    """A JSON object's text, or ValueError naming what it is instead."""
    if not value:
        return "{}"
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(f"metadata must be a JSON object, not {type(parsed).__name__}")
    return value
