"""The read-only SQL path: users' statements, checked on ClickHouse's own syntax tree, run with limits.

The engine the statement will run on parses it (`parseQueryToJSON`, ClickHouse 26.8 and later;
an older server's statements are parsed by the embedded engine instead), and ingest/sql_guard.py
accepts only what it lists. Every query then runs with ClickHouse's own limits on memory, rows
and bytes read, result size, time and threads (`Limits`), a few at a time, on the store's
users' connection (`read_only_arrow`), where `readonly=2` refuses writes and DDL once more.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pyarrow as pa

from . import sql_guard
from .sql_guard import QueryRejected, quote
from .storage import Store

__all__ = ["QueryRejected", "check_read_only", "run_query", "run_query_raw", "project_filters", "Limits"]

DEFAULT_MAX_ROWS = 1_000_000
MAX_ROWS = 10_000_000
DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 300
MAX_SQL_CHARS = 256 << 10  # ClickHouse's own max_query_size
# Tables no query may read, whoever asks; refused by the checks already, hidden here once more.
HIDDEN_TABLES = {"api_keys": "0", "schema_migrations": "0"}
PREPARED_STATEMENTS = 4096
CATALOG_TTL_S = 10.0
_NO_JSON = ("does not support JSON serialization", "is not supported by parseQueryToJSON")


@dataclass(frozen=True)
class Limits:
    """What one users' query may take; each is a ClickHouse setting but `concurrent`.

    From the environment (`PULSE_QUERY_MAX_MEMORY=2G`, ...), else these defaults. At most
    `concurrent` users' queries run at once, so their memory together stays under
    `concurrent * max_memory`; the rest wait up to `queue_timeout_s` and are then refused.
    """

    max_memory: int = 2 << 30
    max_rows_to_read: int = 2_000_000_000
    max_bytes_to_read: int = 200 << 30
    max_result_bytes: int = 256 << 20
    max_threads: int = 4
    concurrent: int = 4
    queue_timeout_s: float = 10.0

    @classmethod
    def from_env(cls) -> Limits:
        values: dict[str, Any] = {}
        for name, default in cls().__dict__.items():
            text = os.environ.get(f"PULSE_QUERY_{name.upper()}", "").strip()
            if text:
                values[name] = _size(text, name) if isinstance(default, int) else float(text)
        return cls(**values)

    def settings(self) -> dict[str, Any]:
        return {"max_memory_usage": self.max_memory, "max_rows_to_read": self.max_rows_to_read,
                "max_bytes_to_read": self.max_bytes_to_read, "max_result_bytes": self.max_result_bytes,
                "max_threads": self.max_threads}


def _size(text: str, name: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    try:
        if text[-1].upper() in units:
            return int(float(text[:-1]) * units[text[-1].upper()])
        return int(text)
    except ValueError:
        raise ValueError(f"PULSE_QUERY_{name.upper()}={text!r}: give a number, optionally with K, M, G or T") from None


class ProjectFilters(dict):
    """table -> SQL condition keeping one project's rows; remembers the project for the server's row policies."""

    def __init__(self, project: str, filters: dict[str, str]) -> None:
        super().__init__(filters)
        self.project = project


def project_filters(store: Store, project: str) -> dict[str, str]:
    """A filter per readable table keeping rows of `project` only ('' = no filter)."""
    if not project:
        return {}
    return ProjectFilters(project, {table: f"project = {quote(project)}" for table in sql_guard.PUBLIC_TABLES})


def check_read_only(store: Store, sql: str, parameters: dict[str, Any] | None = None,
                    scoped: bool = False) -> None:
    """Raise QueryRejected unless `sql` is one read-only statement users may run.

    Accepted: SELECT/WITH over the public tables and the short list of system tables of
    ingest/sql_guard.py, calling only the functions of ingest/sql_functions.py; DESCRIBE TABLE,
    SHOW TABLES and SHOW COLUMNS of the public tables; SETTINGS of the limits the server lowers
    them to (sql_guard.LIMIT_SETTINGS). Refused, each by name: every other statement, table,
    database, table function, function and setting; FORMAT and INTO OUTFILE clauses; parameters
    standing for names. The same rules hold for every key (`scoped` is
    kept for callers of the earlier API). Parameters only ever stand for values, so what a
    statement may do is decided by its text, and remembered.

        check_read_only(store, "SELECT count() FROM metrics WHERE run_id = {r:String}")
    """
    _prepared(store, sql)


def run_query(store: Store, sql: str, parameters: dict[str, Any] | None = None,
              max_rows: int = 0, timeout_s: float = 0, filters: dict[str, str] | None = None) -> pa.Table:
    """Run one read-only statement with `Limits`, row and time limits.

    `filters` (table -> SQL condition) are applied by ClickHouse to every read of those tables
    (`additional_table_filters`): how a key for one project sees only that project's rows. On a
    server, the project also travels as the `SQL_pulse_project` setting for its row policies
    (deploy/clickhouse/users-sql.md).
    """
    prepared = _prepared(store, sql)
    limits = Limits.from_env()
    settings = _users_settings(limits, max_rows, timeout_s, filters, asked=prepared.settings)
    project = getattr(filters, "project", None) if filters else None
    with _slot(limits):
        try:
            table = store.read_only_arrow(prepared.sql, parameters or None, settings, project=project)
        except Exception as exc:
            raise QueryRejected(clickhouse_message(exc)) from exc
    if table.nbytes > limits.max_result_bytes:  # ClickHouse checks per block, so one big block may pass
        raise QueryRejected(f"Limit for result exceeded: {table.nbytes} bytes; the limit is "
                            f"{limits.max_result_bytes} (max_result_bytes)")
    return table


def _users_settings(limits: Limits, max_rows: int, timeout_s: float, filters: dict[str, str] | None,
                    output: dict[str, Any] | None = None, asked: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The settings a users' query runs with; `output` (how results are written) never overrides a limit,
    and a limit the statement's SETTINGS `asked` for is taken only where it is lower than the server's."""
    max_rows = min(max_rows or DEFAULT_MAX_ROWS, MAX_ROWS)
    timeout_s = min(timeout_s or DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
    overflow = "break" if (output or {}).get("result_overflow_mode") == "break" else "throw"
    settings = {**(output or {}), "readonly": 2, "max_result_rows": max_rows, "result_overflow_mode": overflow,
                "max_execution_time": timeout_s, **limits.settings(),
                "additional_table_filters": _map_literal({**HIDDEN_TABLES, **(filters or {})})}
    for name, value in (asked or {}).items():
        if value > 0:  # 0 is ClickHouse's "no limit": the server's stays
            settings[name] = min(settings[name], value)
    return settings


def run_query_raw(store: Store, sql: str, fmt: str, parameters: dict[str, Any] | None = None,
                  max_rows: int = 0, timeout_s: float = 0, filters: dict[str, str] | None = None,
                  settings: dict[str, Any] | None = None) -> bytes:
    """`run_query`, answered as the engine's own bytes in output format `fmt` (ClickHouse's HTTP
    interface, ingest/http_sql.py). `sql` has no FORMAT clause; `settings` are output-format
    settings (and result_overflow_mode=break, a result cut short at max_rows on request)."""
    prepared = _prepared(store, sql)
    limits = Limits.from_env()
    settings = _users_settings(limits, max_rows, timeout_s, filters, settings, asked=prepared.settings)
    project = getattr(filters, "project", None) if filters else None
    with _slot(limits):
        try:
            payload = store.read_only_raw(prepared.sql, parameters or None, settings, fmt, project=project)
        except Exception as exc:
            raise QueryRejected(clickhouse_message(exc)) from exc
    if len(payload) > limits.max_result_bytes:  # ClickHouse checks per block, so one big block may pass
        raise QueryRejected(f"Limit for result exceeded: {len(payload)} bytes; the limit is "
                            f"{limits.max_result_bytes} (max_result_bytes)")
    return payload


_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


class _slot:
    """One of `limits.concurrent` places for a running users' query."""

    def __init__(self, limits: Limits) -> None:
        with _slots_lock:
            self._semaphore = _slots.setdefault(limits.concurrent, threading.BoundedSemaphore(limits.concurrent))
        self._limits = limits

    def __enter__(self) -> None:
        if not self._semaphore.acquire(timeout=self._limits.queue_timeout_s):
            raise QueryRejected(f"{self._limits.concurrent} queries are running already and none ended within "
                                f"{self._limits.queue_timeout_s:g} s; try again later (PULSE_QUERY_CONCURRENT)")

    def __exit__(self, *exc: object) -> None:
        self._semaphore.release()


# -- preparing a statement: parse, check, rewrite ----------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """What is sent for a users' statement: the SELECT, and the limits its SETTINGS asked for."""

    sql: str
    settings: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


_lock = threading.Lock()
_statements: OrderedDict[tuple[str, str], Prepared | QueryRejected] = OrderedDict()
_catalogs: dict[str, tuple[float, sql_guard.Catalog]] = {}
_views: dict[str, dict[str, dict[str, Any]]] = {}
_local_parsers: dict[str, Any] = {}


def _prepared(store: Store, sql: str) -> Prepared:
    """The SELECT to send for users' `sql`, or QueryRejected saying why there is none."""
    if not sql.strip():
        raise QueryRejected("empty query")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRejected(f"the query is {len(sql)} characters long; the limit is {MAX_SQL_CHARS}")
    key = (store.url, sql)
    with _lock:
        found = _statements.get(key)
        if found is not None:
            _statements.move_to_end(key)
    if found is None:
        try:
            found = _prepare(store, sql)
        except QueryRejected as exc:
            found = exc
        with _lock:
            _statements[key] = found
            if len(_statements) > PREPARED_STATEMENTS:
                _statements.popitem(last=False)
    if isinstance(found, QueryRejected):
        raise QueryRejected(str(found))
    return found


def _prepare(store: Store, sql: str) -> Prepared:
    catalog = _catalog(store)
    try:
        tree = _parse(store, sql)
    except QueryRejected as exc:
        if not any(marker in str(exc) for marker in _NO_JSON):
            raise
        formatted = _engine_value(store, "SELECT formatQuery({q:String})", {"q": sql})
        select = sql_guard.describe_as_select(formatted, catalog)
        if select is None:
            words = formatted.split()
            verb = " ".join(words[:2]) if words[:1] == ["SHOW"] else (words or ["?"])[0]
            raise QueryRejected(f"only read-only queries are allowed ({sql_guard.VERBS}); got {verb}") from None
        return _checked(store, _parse(store, select), catalog, rewritten=True, original=select)
    if tree.get("type") in ("ShowTablesQuery", "ShowColumnsQuery"):
        select = sql_guard.show_as_select(tree, catalog)
        return _checked(store, _parse(store, select), catalog, rewritten=True, original=select)
    return _checked(store, tree, catalog, rewritten=False, original=sql)


def _checked(store: Store, tree: dict[str, Any], catalog: sql_guard.Catalog, rewritten: bool,
             original: str) -> Prepared:
    inspection = sql_guard.inspect(tree, catalog)
    asked = MappingProxyType(dict(inspection.settings))
    local = store.url in _local_parsers
    if not inspection.views and not asked and not local:
        return Prepared(original)  # parsed by the engine it runs on: what was checked is what runs
    if inspection.views:
        tree = sql_guard.graft(inspection, _view_trees(store))
    return Prepared(_format(store, tree), asked)  # the tree without its SETTINGS, whose limits travel apart


def _parse(store: Store, sql: str) -> dict[str, Any]:
    local = _local_parsers.get(store.url)
    try:
        text = _engine_value(local or store, "SELECT parseQueryToJSON({q:String})", {"q": sql})
    except QueryRejected as exc:
        if local is not None or "parseQueryToJSON" not in str(exc) or "UNKNOWN_FUNCTION" not in str(exc):
            raise
        # A server older than 26.8: ClickHouse's parser still decides, the embedded one, and the
        # statement is sent as that parser formats what it checked.
        _local_parsers[store.url] = _local_parser()
        return _parse(store, sql)
    return json.loads(text)


def _format(store: Store, tree: dict[str, Any]) -> str:
    engine = _local_parsers.get(store.url) or store
    return _engine_value(engine, "SELECT formatQueryFromJSON({t:String})", {"t": json.dumps(tree)})


def _view_trees(store: Store) -> dict[str, dict[str, Any]]:
    if store.url not in _views:
        views = [v for v in sql_guard.SYSTEM_TABLES.values() if v]
        _views[store.url] = {view: _parse(store, view) for view in views}
    return _views[store.url]


def _catalog(store: Store) -> sql_guard.Catalog:
    """The database users' SQL runs in and its tables, asked anew every few seconds."""
    now = time.monotonic()
    cached = _catalogs.get(store.url)
    if cached and now - cached[0] < CATALOG_TTL_S:
        return cached[1]
    table = _engine(store, "SELECT currentDatabase() AS db, (SELECT groupArray(name) FROM system.tables "
                           "WHERE database = currentDatabase()) AS tables", None)
    catalog = sql_guard.Catalog(table.column("db")[0].as_py(), frozenset(table.column("tables")[0].as_py()))
    if cached and cached[1] != catalog:
        with _lock:  # a table came or went: what a statement may do is decided anew
            _statements.clear()
    _catalogs[store.url] = (now, catalog)
    return catalog


_ENGINE_SETTINGS = {"readonly": 2, "max_execution_time": 10, "max_result_rows": 1000}


def _engine(store: Any, sql: str, parameters: dict[str, Any] | None) -> pa.Table:
    try:
        return store.read_only_arrow(sql, parameters, dict(_ENGINE_SETTINGS))
    except Exception as exc:
        message = clickhouse_message(exc)
        echo = message.find(" In scope SELECT ")  # the parse call, echoing the statement once more
        if echo > 0:
            message = message[:echo].rstrip(":. ") + "." + message[message.rfind(" ("):]
        raise QueryRejected(message) from exc


def _engine_value(store: Any, sql: str, parameters: dict[str, Any]) -> str:
    return _engine(store, sql, parameters).column(0)[0].as_py()


class _LocalParser:
    """The embedded engine, as a parser only, for servers without parseQueryToJSON."""

    def __init__(self) -> None:
        import clickhouse_connect  # deferred: only an old server's users' SQL needs it

        self._client = clickhouse_connect.get_client(dsn="chdb://")
        self._lock = threading.Lock()

    def read_only_arrow(self, sql: str, parameters: dict[str, Any] | None, settings: dict[str, Any],
                        project: str | None = None) -> pa.Table:
        with self._lock:
            return self._client.query_arrow(sql, parameters=parameters, settings=settings)


def _local_parser() -> _LocalParser:
    return _LocalParser()


def clickhouse_message(exc: Exception) -> str:
    """ClickHouse's own message, without the driver's wrapping and the echoed SQL."""
    text = str(exc).strip()
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    return text.split("\n")[0][:2000]


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _map_literal(items: dict[str, str]) -> str:
    return "{" + ", ".join(f"{quote(k)}: {quote(v)}" for k, v in items.items()) + "}"
