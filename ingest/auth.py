"""API keys: who may write which project, who may only read, who manages keys.

A key looks like `pk_<key id>_<secret>`. The store keeps the id and the
sha256 of the secret (the secret is 256 random bits, so a plain hash is as
good as a slow one), never the secret. With auth on, every RPC but the
health check needs `authorization: Bearer <key>`; without a key the answer
is UNAUTHENTICATED, with a key that may not do the thing PERMISSION_DENIED.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pyarrow as pa

from .storage import Store
from .validate import TS, name_problem

log = logging.getLogger(__name__)
PREFIX = "pk_"
CACHE_SECONDS = 5.0  # how long a revocation may take to reach a running ingest


@dataclass(frozen=True)
class Principal:
    key_id: str
    project: str = ""  # "" = every project
    read_only: bool = False
    admin: bool = False

    def write_problem(self, project: str) -> str | None:
        if self.read_only:
            return f"key {self.key_id} is read-only; it cannot write runs"
        if self.project and project != self.project:
            return f"key {self.key_id} is for project {self.project!r}, not {project!r}"
        return None


OPEN = Principal(key_id="(auth off)", admin=True)


class AuthFailure(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def bearer(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    return ""


class KeyStore:
    def __init__(self, store: Store, enabled: bool) -> None:
        self._store = store
        self.enabled = enabled
        self._cache: dict[str, tuple[float, tuple | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, context: grpc.ServicerContext) -> Principal:
        """The caller's principal; AuthFailure(UNAUTHENTICATED) without a valid key."""
        if not self.enabled:
            return OPEN
        token = bearer(context)
        if not token:
            raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED,
                              "this server requires an API key: set PULSE_API_KEY (create one with "
                              "`pulse keys create --project P`)")
        key_id, _, secret = token.removeprefix(PREFIX).partition("_")
        row = self._row(key_id) if token.startswith(PREFIX) and secret else None
        if row is None or not hmac.compare_digest(row[0], _digest(secret)):
            raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, "the API key is not valid")
        digest, project, read_only, admin, revoked = row
        if revoked:
            raise AuthFailure(grpc.StatusCode.UNAUTHENTICATED, f"the API key {key_id} was revoked")
        return Principal(key_id, project, bool(read_only), bool(admin))

    def _row(self, key_id: str) -> tuple | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        rows = self._store.query_rows(
            "SELECT secret_sha256, project, read_only, admin, revoked FROM api_keys FINAL "
            "WHERE key_id = {k:String}", {"k": key_id})
        row = tuple(rows[0]) if rows else None
        with self._lock:
            self._cache[key_id] = (now, row)
        return row

    def create(self, project: str = "", read_only: bool = False, admin: bool = False, note: str = "") -> str:
        """A new key (the only time its secret exists outside the caller's hands)."""
        if project and (problem := name_problem(project, "project")):
            raise ValueError(problem)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
        self._write(key_id, _digest(secret), project, read_only, admin, revoked=False, note=note)
        return f"{PREFIX}{key_id}_{secret}"

    def revoke(self, key_id: str) -> bool:
        rows = self._store.query_rows(
            "SELECT secret_sha256, project, read_only, admin, note FROM api_keys FINAL WHERE key_id = {k:String}",
            {"k": key_id})
        if not rows:
            return False
        digest, project, read_only, admin, note = rows[0]
        self._write(key_id, digest, project, bool(read_only), bool(admin), revoked=True, note=note)
        with self._lock:
            self._cache.pop(key_id, None)
        return True

    def list(self) -> list[dict]:
        rows = self._store.query_rows(
            "SELECT key_id, project, read_only, admin, revoked, note, toString(created_at) "
            "FROM api_keys FINAL ORDER BY created_at")
        names = ("key_id", "project", "read_only", "admin", "revoked", "note", "created_at")
        return [dict(zip(names, row)) for row in rows]

    def _write(self, key_id: str, digest: str, project: str, read_only: bool, admin: bool, *,
               revoked: bool, note: str) -> None:
        now = time.time_ns() // 1000
        self._store.insert("api_keys", pa.table({
            "key_id": [key_id], "secret_sha256": [digest], "project": [project],
            "read_only": pa.array([int(read_only)], pa.uint8()), "admin": pa.array([int(admin)], pa.uint8()),
            "revoked": pa.array([int(revoked)], pa.uint8()), "note": [note],
            "created_at": pa.array([now], TS), "updated_at": pa.array([now], TS)}))

    def ensure_admin_key(self, path: Path) -> bool:
        """At the first start with auth on, write an admin key to `path` (mode 0600)."""
        if path.exists():
            return False
        token = self.create(admin=True, note="first admin key")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return True


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
