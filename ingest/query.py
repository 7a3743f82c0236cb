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
READ_VERBS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN")
# Table functions that read only the store or make numbers; everything else
# (file, url, s3, remote, mysql, executable, ...) reaches outside and is refused.
SAFE_TABLE_FUNCTIONS = {"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "values",
                        "view", "merge"}
_TABLE_FUNCTION = re.compile(r"^\s*Function (\w+)")


class QueryRejected(ValueError):
    """The statement is not a single read-only query; the message says why."""


_checked: OrderedDict[tuple[str, str], None] = OrderedDict()  # statements already found read-only
CHECKED_STATEMENTS = 4096


def check_read_only(store: Store, sql: str, parameters: dict[str, Any] | None = None) -> None:
    """Raise QueryRejected unless `sql` is one read-only statement without outside table functions.

    Dashboards send the same statements over and over with new parameters, and
    parameters only ever stand for values, so a statement found read-only once
    is remembered by its text.
    """
    if not sql.strip():
        raise QueryRejected("empty query")
    key = (store.url, sql)
    if key in _checked:
        _checked.move_to_end(key)
        return
    _check(store, sql, parameters)
    _checked[key] = None
    if len(_checked) > CHECKED_STATEMENTS:
        _checked.popitem(last=False)


def _check(store: Store, sql: str, parameters: dict[str, Any] | None) -> None:
    try:
        formatted = store.query_rows("SELECT formatQuery({q:String})", {"q": sql})[0][0]
        verb = formatted.split(None, 1)[0].upper() if formatted else ""
        if verb not in READ_VERBS:
            raise QueryRejected(f"only read-only queries are allowed ({', '.join(READ_VERBS)}); got {verb}")
        ast = []
        if verb in ("SELECT", "WITH"):
            # As a subquery, so the client's trailing FORMAT applies to the EXPLAIN output.
            explain = f"SELECT explain FROM (EXPLAIN AST {formatted})"
            ast = [row[0] for row in store.query_rows(explain, parameters or None)]
    except QueryRejected:
        raise
    except Exception as exc:
        raise QueryRejected(clickhouse_message(exc)) from exc
    for above, line in zip(ast, ast[1:]):
        match = _TABLE_FUNCTION.match(line)
        if "TableExpression" in above and match and match.group(1) not in SAFE_TABLE_FUNCTIONS:
            raise QueryRejected(f"table function {match.group(1)}() is not allowed in read-only queries")


def run_query(store: Store, sql: str, parameters: dict[str, Any] | None = None,
              max_rows: int = 0, timeout_s: float = 0) -> pa.Table:
    """Run one read-only statement with row and time limits."""
    check_read_only(store, sql, parameters)
    max_rows = min(max_rows or DEFAULT_MAX_ROWS, MAX_ROWS)
    timeout_s = min(timeout_s or DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S)
    settings = {"readonly": 2, "max_result_rows": max_rows, "result_overflow_mode": "throw",
                "max_execution_time": timeout_s}
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
