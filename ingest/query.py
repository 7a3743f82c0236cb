"""The read-only SQL path: one statement, no writes, no table functions that reach outside.

ClickHouse does the heavy lifting: `readonly=2` refuses writes, DDL and
changing `readonly` itself; `formatQuery` refuses multiple statements; the
parsed AST tells which table functions a query uses. Time and row limits are
ClickHouse settings, so a runaway query is stopped by the engine.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

import pyarrow as pa

from .storage import Store

DEFAULT_MAX_ROWS = 1_000_000
MAX_ROWS = 10_000_000
DEFAULT_TIMEOUT_S = 30
MAX_TIMEOUT_S = 300
READ_VERBS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS")
# DESCRIBE and EXISTS may name a table, never a table function.
_NAMES_A_TABLE = re.compile(r"^(DESCRIBE|DESC|EXISTS)( TABLE)? [\w.`\"]+$", re.IGNORECASE)
# Tables no query may read, whoever asks (key hashes are managed through the Admin service).
HIDDEN_TABLES = {"api_keys": "0"}
# Table functions that read only the store or make numbers; everything else
# (file, url, s3, remote, mysql, executable, ...) reaches outside and is refused.
SAFE_TABLE_FUNCTIONS = {"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "values",
                        "view"}
_TABLE_FUNCTION = re.compile(r"^\s*Function (\w+)")


class QueryRejected(ValueError):
    """The statement is not a single read-only query; the message says why."""


# System tables that describe the schema, not anyone's data: open to project-scoped keys.
SCHEMA_TABLES = {"system.one", "system.numbers", "system.tables", "system.columns", "system.functions",
                 "system.table_functions", "system.data_type_families", "system.databases"}
_TABLE = re.compile(r"^\s*TableIdentifier (\S+)")
_inspected: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()  # text -> tables it reads
INSPECTED_STATEMENTS = 4096


def check_read_only(store: Store, sql: str, parameters: dict[str, Any] | None = None,
                    scoped: bool = False) -> None:
    """Raise QueryRejected unless `sql` is one read-only statement that reads only the store.

    Refused: anything but SELECT/WITH/SHOW/DESCRIBE/EXISTS, several
    statements, SETTINGS clauses (the server sets the limits), table
    functions that reach outside (file, url, s3, remote, ...), and for a
    `scoped` (one-project) caller, system tables other than the schema's.
    Dashboards send the same statements over and over with new parameters,
    and parameters only ever stand for values, so what a statement reads is
    remembered by its text.
    """
    if not sql.strip():
        raise QueryRejected("empty query")
    key = (store.url, sql)
    tables = _inspected.get(key)
    if tables is None:
        tables = _inspect(store, sql, parameters)
        _inspected[key] = tables
        if len(_inspected) > INSPECTED_STATEMENTS:
            _inspected.popitem(last=False)
    else:
        _inspected.move_to_end(key)
    if scoped:
        for table in sorted(tables):
            if table.startswith("system.") and table not in SCHEMA_TABLES:
                raise QueryRejected(f"{table} is not readable with a key for one project")


def _inspect(store: Store, sql: str, parameters: dict[str, Any] | None) -> frozenset[str]:
    try:
        formatted = store.query_rows("SELECT formatQuery({q:String})", {"q": sql})[0][0]
        verb = formatted.split(None, 1)[0].upper() if formatted else ""
        if verb not in READ_VERBS:
            raise QueryRejected(f"only read-only queries are allowed ({', '.join(READ_VERBS)}); got {verb}")
        if verb in ("DESCRIBE", "DESC", "EXISTS") and not _NAMES_A_TABLE.match(formatted):
            raise QueryRejected(f"{verb} may only name a table")
        ast = []
        if verb in ("SELECT", "WITH"):
            # As a subquery, so the client's trailing FORMAT applies to the EXPLAIN output.
            explain = f"SELECT explain FROM (EXPLAIN AST {formatted})"
            ast = [row[0] for row in store.query_rows(explain, parameters or None)]
    except QueryRejected:
        raise
    except Exception as exc:
        raise QueryRejected(clickhouse_message(exc)) from exc
    tables = set()
    for above, line in zip(ast, ast[1:]):
        match = _TABLE_FUNCTION.match(line)
        if "TableExpression" in above and match and match.group(1) not in SAFE_TABLE_FUNCTIONS:
            raise QueryRejected(f"table function {match.group(1)}() is not allowed in read-only queries")
        if match := _TABLE.match(line):
            name = match.group(1)
            tables.add(name)
    if any(line.strip() == "Set" or line.strip().startswith("Set ") for line in ast):
        raise QueryRejected("SETTINGS clauses are not allowed in read-only queries; the server sets the limits")
    return frozenset(tables)


def run_query(store: Store, sql: str, parameters: dict[str, Any] | None = None,
              max_rows: int = 0, timeout_s: float = 0, filters: dict[str, str] | None = None) -> pa.Table:
    """Run one read-only statement with row and time limits.

    `filters` (table -> SQL condition) are applied by ClickHouse to every read
    of those tables (`additional_table_filters`): how a key for one project
    sees only that project's rows.
    """
    check_read_only(store, sql, parameters, scoped=bool(filters))
    max_rows = min(max_rows or DEFAULT_MAX_ROWS, MAX_ROWS)
    timeout_s = min(timeout_s or DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
    settings = {"readonly": 2, "max_result_rows": max_rows, "result_overflow_mode": "throw",
                "max_execution_time": timeout_s,
                "additional_table_filters": _map_literal({**HIDDEN_TABLES, **(filters or {})})}
    try:
        return store.read_only_arrow(sql, parameters or None, settings)
    except Exception as exc:
        raise QueryRejected(clickhouse_message(exc)) from exc


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


def project_filters(store: Store, project: str) -> dict[str, str]:
    """A filter per table with a `project` column, keeping rows of `project` only ('' = no filter)."""
    if not project:
        return {}
    tables = store.query_rows("SELECT DISTINCT table FROM system.columns WHERE database = currentDatabase() "
                              "AND name = 'project'")
    return {table: f"project = {_quote(project)}" for (table,) in tables}


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _map_literal(items: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in items.items()) + "}"
