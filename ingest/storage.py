"""The store: ClickHouse through clickhouse-connect, addressed by one URL.

`chdb:///DIR` is the embedded engine (chDB, in this process, persistent in DIR);
`http(s)://user:password@host:8123/db` is a ClickHouse server. Both speak the
same client API, so the rest of the ingest never knows which one it has.
"""

from __future__ import annotations

import logging
import os
import re
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
                        settings: dict[str, Any], project: str | None = None) -> pa.Table: ...

    def read_only_raw(self, sql: str, parameters: dict[str, Any] | None, settings: dict[str, Any], fmt: str,
                      project: str | None = None) -> bytes: ...

    def command(self, sql: str) -> Any: ...

    def close(self) -> None: ...


class ClickHouseStore:
    """A `Store` over clickhouse-connect; one client per thread.

    chDB clients on one directory share the engine, and HTTP clients share a
    connection pool, so a client per thread costs little and keeps sessions
    (settings, USE) from leaking between the flusher and queries.
    """

    def __init__(self, url: str, query_url: str | None = None) -> None:
        import clickhouse_connect  # deferred: importing the driver (and chDB) is slow

        self.url = url
        # On a server, users' SQL may run as a read-only ClickHouse user of its own whose row
        # policies keep each key's project (deploy/clickhouse/users-sql.md).
        if query_url is None:
            query_url = "" if url.startswith("chdb:") else os.environ.get("PULSE_QUERY_CLICKHOUSE_URL", "")
        self.query_url = query_url
        self._connect = clickhouse_connect.get_client
        self._local = threading.local()
        self._clients: list[Any] = []
        self._lock = threading.Lock()
        self._client()  # fail fast on a bad URL

    def _client(self, role: str = "writer") -> Any:
        client = getattr(self._local, role, None)
        if client is None:
            url = self.query_url if role == "reader" and self.query_url else self.url
            extra = {} if url.startswith("chdb:") else {"autogenerate_session_id": False}
            client = self._connect(dsn=url, **extra)
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
                        settings: dict[str, Any], project: str | None = None) -> pa.Table:
        """Run users' SQL on a client of its own: chDB keeps per-query settings such as
        `readonly` on the client's session, so they must never reach the writer's client.

        With a users' connection of its own (`query_url`), `project` (None: every project)
        travels as the custom settings its row policies read."""
        if self.query_url:
            settings = {**settings, **query_scope(project)}
        return self._client("reader").query_arrow(sql, parameters=parameters, settings=settings)

    def read_only_raw(self, sql: str, parameters: dict[str, Any] | None, settings: dict[str, Any], fmt: str,
                      project: str | None = None) -> bytes:
        """`read_only_arrow`, answered as the engine's own bytes in output format `fmt` (for ingest/http_sql.py)."""
        if self.query_url:
            settings = {**settings, **query_scope(project)}
        return self._client("reader").raw_query(sql, parameters=parameters, settings=settings, fmt=fmt)

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


def query_scope(project: str | None) -> dict[str, str]:
    """The settings the users' ClickHouse user's row policies read: one project's rows, or all."""
    return {"SQL_pulse_project": project or "", "SQL_pulse_all_projects": "0" if project else "1"}


def open_store(url: str, migrations: str | None = None, cluster: str = "") -> ClickHouseStore:
    """Connect to `url` and bring its schema up to date.

    With `cluster` (a name from the server's `remote_servers`) the default set is
    `clustered`, applied ON CLUSTER; without it, `unclustered`.
    """
    if cluster and url.startswith("chdb:"):
        raise ValueError("--cluster needs a ClickHouse server (http(s)://...), not the embedded chdb:// store")
    store = ClickHouseStore(url)
    try:
        migrate(store, migrations or ("clustered" if cluster else "unclustered"), cluster)
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


# The ledger of applied migrations. On a cluster it is one table replicated to every
# node (its Keeper path has no {shard}, so each replica needs a cluster-wide unique
# name): whichever node an ingest replica talks to, it sees the same history.
LEDGER = {
    "unclustered": ("CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
                    "ENGINE = MergeTree ORDER BY version"),
    "clustered": ("CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER '{cluster}' "
                  "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
                  "ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/schema_migrations', "
                  "'{shard}-{replica}') ORDER BY version"),
}
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_DATABASE_NAME = re.compile(r"[A-Za-z0-9_]+")


def render(sql: str, cluster: str, database: str) -> str:
    """Fill in what a clustered migration leaves to Pulse: `{cluster}` and `{database}`.

    `{shard}` and `{replica}` stay for every server to expand from its own macros.
    `{database}` is a server macro too, but only inside Replicated* paths; the
    Distributed engine needs the name itself, so Pulse fills it in everywhere.

        render("CREATE TABLE t ON CLUSTER '{cluster}' ...", "pulse", "default")
    """
    if not _CLUSTER_NAME.fullmatch(cluster):
        raise ValueError(f"bad cluster name {cluster!r}: use letters, digits, '_', '-' and '.'")
    if not _DATABASE_NAME.fullmatch(database):
        raise ValueError(f"the clustered migrations need a database named with letters, digits and '_', "
                         f"not {database!r}")
    return sql.replace("{cluster}", cluster).replace("{database}", database)


def _renderer(store: Store, migrations: str, cluster: str):
    if migrations != "clustered":
        return lambda sql: sql
    if not cluster:
        raise ValueError("the clustered migrations run ON CLUSTER: name the cluster (pulse ingest --cluster NAME)")
    if not store.query_rows("SELECT 1 FROM system.clusters WHERE cluster = {c:String} LIMIT 1", {"c": cluster}):
        raise ValueError(f"the ClickHouse server at {store.url.rpartition('@')[2]} has no cluster {cluster!r} "
                         "in its remote_servers configuration")
    database = store.query_rows("SELECT currentDatabase()")[0][0]
    return lambda sql: render(sql, cluster, database)


def migrate(store: Store, migrations: str = "unclustered", cluster: str = "") -> list[int]:
    """Apply the migrations not applied yet; return their versions.

    The `clustered` set runs ON CLUSTER `cluster`, so every node gets every table.
    """
    fill = _renderer(store, migrations, cluster)
    store.command(fill(LEDGER[migrations]))
    done = {row[0] for row in store.query_rows("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in migration_files(migrations):
        if version in done:
            continue
        for statement in _statements(fill(sql)):
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
