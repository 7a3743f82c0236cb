"""The store: ClickHouse through clickhouse-connect, addressed by one URL.

`chdb:///DIR` is the embedded engine (chDB, in this process, persistent in DIR);
`http(s)://user:password@host:8123/db` is a ClickHouse server. Both speak the
same client API, so the rest of the ingest never knows which one it has.
"""

from __future__ import annotations

import logging
import threading
from importlib import resources
from typing import Any, Protocol

import pyarrow as pa

log = logging.getLogger(__name__)


class Store(Protocol):
    """What the ingest needs from a ClickHouse backend."""

    url: str

    def insert(self, table: str, data: pa.Table) -> None: ...

    def query_arrow(self, sql: str, parameters: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> pa.Table: ...

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]: ...

    def read_only_arrow(self, sql: str, parameters: dict[str, Any] | None,
                        settings: dict[str, Any]) -> pa.Table: ...

    def command(self, sql: str) -> Any: ...

    def close(self) -> None: ...


class ClickHouseStore:
    """A `Store` over clickhouse-connect; one client per thread.

    chDB clients on one directory share the engine, and HTTP clients share a
    connection pool, so a client per thread costs little and keeps sessions
    (settings, USE) from leaking between the flusher and queries.
    """

    def __init__(self, url: str) -> None:
        import clickhouse_connect  # deferred: importing the driver (and chDB) is slow

        self.url = url
        self._connect = clickhouse_connect.get_client
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._client()  # fail fast on a bad URL

    def _client(self, role: str = "writer") -> Any:
        client = getattr(self._local, role, None)
        if client is None:
            extra = {} if self.url.startswith("chdb:") else {"autogenerate_session_id": False}
            client = self._connect(dsn=self.url, **extra)
            setattr(self._local, role, client)
            with self._lock:
                self._clients.append(client)
        return client

    def insert(self, table: str, data: pa.Table) -> None:
        self._client().insert_arrow(table, data)

    def query_arrow(self, sql: str, parameters: dict[str, Any] | None = None,
                    settings: dict[str, Any] | None = None) -> pa.Table:
        return self._client().query_arrow(sql, parameters=parameters, settings=settings)

    def query_rows(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple]:
        return self._client().query(sql, parameters=parameters).result_rows

    def read_only_arrow(self, sql: str, parameters: dict[str, Any] | None,
                        settings: dict[str, Any]) -> pa.Table:
        """Run users' SQL on a client of its own: chDB keeps per-query settings such as
        `readonly` on the client's session, so they must never reach the writer's client."""
        return self._client("reader").query_arrow(sql, parameters=parameters, settings=settings)

    def command(self, sql: str) -> Any:
        return self._client().command(sql)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception:  # closing is best effort; the engine is going away anyway
                log.debug("closing a ClickHouse client failed", exc_info=True)


def open_store(url: str, migrations: str = "unclustered") -> ClickHouseStore:
    """Connect to `url` and bring its schema up to date."""
    store = ClickHouseStore(url)
    try:
        migrate(store, migrations)
    except Exception:
        store.close()
        raise
    return store


def migration_files(migrations: str = "unclustered") -> list[tuple[int, str, str]]:
    """(version, name, sql) for every numbered SQL file of a migration set, in order."""
    folder = resources.files("ingest") / "migrations" / migrations
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, name = entry.name.removesuffix(".sql").partition("_")
            found.append((int(version), name, entry.read_text()))
    return sorted(found)


def migrate(store: Store, migrations: str = "unclustered") -> list[int]:
    """Apply the migrations not applied yet; return their versions."""
    store.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = MergeTree ORDER BY version"
    )
    done = {row[0] for row in store.query_rows("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in migration_files(migrations):
        if version in done:
            continue
        for statement in _statements(sql):
            store.command(statement)
        store.insert("schema_migrations", pa.table({
            "version": pa.array([version], pa.uint32()), "name": pa.array([name]),
        }))
        applied.append(version)
        log.info("applied migration %04d_%s", version, name)
    return applied


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
