"""What users' SQL may do, decided on ClickHouse's own syntax tree: an allowlist.

The engine parses the statement (`parseQueryToJSON`); this module walks the tree it returns and
accepts only what is listed here: SELECT/WITH over the public tables and a short list of system
tables, calling the functions of ingest/sql_functions.py. SHOW TABLES, SHOW COLUMNS and DESCRIBE
become SELECTs over the same system tables, so they pass the same checks, and nothing but a
SELECT ever reaches the engine. A SETTINGS clause may only lower the server's limits
(LIMIT_SETTINGS): it is taken out of the statement, and each value is applied only where it is below
the server's own. Each refusal names what it refused.

    problem = function_problem("file")  # 'function file() is not allowed in read-only queries'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from . import sql_functions

# The documented public schema (ARCHITECTURE.md) plus the sweeps' trials: every table users may read.
# api_keys and schema_migrations are the ingest's own and stay unreadable whoever asks.
PUBLIC_TABLES = ("runs", "metrics", "system_metrics", "histograms", "media", "model_graphs", "alerts", "sweeps",
                 "sweep_trials", "logs", "artifacts", "artifact_versions", "artifact_files", "artifact_aliases",
                 "artifact_usage")
_PUBLIC = ", ".join(f"'{t}'" for t in PUBLIC_TABLES)
# The system tables users may read: name -> None (readable as it is) or the SELECT it is read through,
# which keeps the rows of this database's public tables and leaves out paths and sizes.
SYSTEM_TABLES: dict[str, str | None] = {
    "one": None, "numbers": None, "numbers_mt": None, "zeros": None, "zeros_mt": None,
    "aggregate_function_combinators": None, "data_type_families": None,
    "functions": "SELECT name, is_aggregate, case_insensitive, alias_to, description, categories "
                 "FROM system.functions WHERE origin = 'System'",
    "tables": "SELECT database, name, engine, is_temporary, create_table_query, partition_key, sorting_key, "
              f"primary_key, sampling_key, comment FROM system.tables WHERE database = currentDatabase() "
              f"AND name IN ({_PUBLIC})",
    "columns": "SELECT database, table, name, type, position, default_kind, default_expression, comment, "
               "is_in_partition_key, is_in_sorting_key, is_in_primary_key, is_in_sampling_key, compression_codec "
               f"FROM system.columns WHERE database = currentDatabase() AND table IN ({_PUBLIC})",
    "projections": "SELECT database, table, name, type, sorting_key, query FROM system.projections "
                   f"WHERE database = currentDatabase() AND table IN ({_PUBLIC})",
    # BI tools list databases first (DBeaver's navigator, Grafana's query builder): this one only.
    "databases": "SELECT name, engine, comment FROM system.databases WHERE name = currentDatabase()",
    # Clients read the settings on connecting (clickhouse-connect: name, value, readonly); a value
    # that is a path is left out, as the tables' paths are.
    "settings": "SELECT name, value, changed, type, description, readonly FROM system.settings "
                "WHERE NOT startsWith(value, '/')",
}
VERBS = "SELECT, WITH, DESCRIBE, SHOW TABLES, SHOW COLUMNS"
SETTINGS_REFUSED = "SETTINGS clauses are not allowed in read-only queries; the server sets the limits"
# The settings a query's SETTINGS clause may name, with the type of their values: limits, which ClickHouse
# enforces. The server runs every query with its own value of each (ingest/query.py), and a value from the
# query is taken only where it is lower; 0 (ClickHouse's "no limit") or a higher one leaves the server's.
LIMIT_SETTINGS: dict[str, type] = {
    "max_execution_time": float, "max_result_rows": int, "max_result_bytes": int, "max_rows_to_read": int,
    "max_bytes_to_read": int, "max_memory_usage": int, "max_threads": int,
}
# Syntax-tree nodes a read-only query is made of; any other node is refused by name.
NODES = {
    "SelectWithUnionQuery", "SelectQuery", "ExpressionList", "TablesInSelectQuery", "TablesInSelectQueryElement",
    "TableExpression", "TableJoin", "ArrayJoin", "TableIdentifier", "Identifier", "Literal", "Function",
    "QueryParameter", "Subquery", "WithElement", "OrderByElement", "Asterisk", "QualifiedAsterisk",
    "ColumnsRegexpMatcher", "ColumnsListMatcher", "QualifiedColumnsRegexpMatcher", "QualifiedColumnsListMatcher",
    "ColumnsTransformerList", "ColumnsExceptTransformer", "ColumnsReplaceTransformer",
    "ColumnsReplaceTransformerReplacement", "ColumnsApplyTransformer", "WindowDefinition", "WindowListElement",
    "InterpolateElement", "SampleRatio",
}
# `x IN t` reads table t when t is a bare name (lowercased names).
IN_FUNCTIONS = {"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin", "globalnotnullin"}
_DESCRIBE = re.compile(r"DESCRIBE TABLE (?:(\w+|`[^`]+`)\.)?([A-Za-z_][A-Za-z0-9_]*)")
_STATEMENTS = {"InsertQuery": "INSERT", "DropQuery": "DROP", "ExplainQuery": "EXPLAIN", "SetQuery": "SET",
               "SystemQuery": "SYSTEM", "OptimizeQuery": "OPTIMIZE", "KillQueryQuery": "KILL",
               "AlterQuery": "ALTER", "CreateQuery": "CREATE", "RenameQuery": "RENAME", "UseQuery": "USE"}


class QueryRejected(ValueError):
    """The statement is not a single read-only query; the message says why."""


def function_problem(name: str, table_function: bool = False) -> str | None:
    """Why users' SQL may not call `name` (None when it may)."""
    if table_function:
        if name in sql_functions.TABLE_FUNCTIONS:
            return None
        return f"table function {name}() is not allowed in read-only queries"
    if name in sql_functions.SYNTAX or _known(name) or _aggregate(name):
        return None
    return f"function {name}() is not allowed in read-only queries"


# ClickHouse looks a name up as written, then lowercased among its case-insensitive functions.
_CASE_INSENSITIVE_AGGREGATES = frozenset(n.lower() for n in sql_functions.AGGREGATES) & sql_functions.CASE_INSENSITIVE


def _known(name: str) -> bool:
    return name in sql_functions.FUNCTIONS or name.lower() in sql_functions.CASE_INSENSITIVE


def _aggregate(name: str) -> bool:
    """An allowed aggregate function with combinators on it (sumIf, uniqStateIf, minIfOrNull...)."""
    for combinator in sql_functions.COMBINATORS:
        if name.endswith(combinator) and len(name) > len(combinator):
            base = name[: -len(combinator)]
            if base in sql_functions.AGGREGATES or base.lower() in _CASE_INSENSITIVE_AGGREGATES or _aggregate(base):
                return True
    return False


@dataclass
class Catalog:
    """What the checks need to know of the store: its database and the tables in it."""

    database: str
    tables: frozenset[str]


@dataclass
class Inspection:
    """A checked tree; `views` are the system-table reads to route through their SELECT, `settings` the
    limits its SETTINGS clauses asked for (taken out of `tree`, which must then be sent as formatted)."""

    tree: dict[str, Any]
    views: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    settings: dict[str, float | int] = field(default_factory=dict)


def inspect(tree: dict[str, Any], catalog: Catalog) -> Inspection:
    """Raise QueryRejected unless `tree` (parseQueryToJSON's) is a read-only SELECT users may run."""
    kind = tree.get("type")
    if kind != "SelectWithUnionQuery":
        raise QueryRejected(f"only read-only queries are allowed ({VERBS}); got {_STATEMENTS.get(kind, kind)}")
    ctes = _cte_names(tree)
    for name in sorted(ctes):
        if name in catalog.tables and name not in PUBLIC_TABLES:
            raise QueryRejected(f"WITH {name} would stand for table {name}, which is not readable")
    found = Inspection(tree)
    _Walk(catalog, ctes, found).node(tree, "")
    return found


def _cte_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        if node.get("type") == "WithElement":
            names.add(node.get("name", ""))
        for value in node.values():
            names |= _cte_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _cte_names(value)
    return names


class _Walk:
    def __init__(self, catalog: Catalog, ctes: set[str], found: Inspection) -> None:
        self.catalog, self.ctes, self.found = catalog, ctes, found

    def node(self, node: Any, key: str) -> None:
        if isinstance(node, list):
            for item in node:
                self.node(item, key)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if kind is None:  # a Literal's value, a SET change: no nodes below
            return
        if kind == "SetQuery":
            raise QueryRejected(SETTINGS_REFUSED)
        if kind not in NODES:
            raise QueryRejected(f"{_STATEMENTS.get(kind, kind)} is not allowed in read-only queries")
        getattr(self, f"_{kind}", self._children)(node, key)

    def _children(self, node: dict[str, Any], key: str = "") -> None:
        for name, value in node.items():
            self.node(value, name)

    def _SelectWithUnionQuery(self, node: dict[str, Any], key: str) -> None:
        if "out_file" in node or node.get("is_into_outfile_with_stdout"):
            raise QueryRejected("INTO OUTFILE is not allowed: results come back to you, never into a server file")
        if "format_ast" in node:
            raise QueryRejected("FORMAT clauses are not allowed: the server picks the result format")
        self._take_settings(node, "settings_ast")
        self._children(node)

    def _SelectQuery(self, node: dict[str, Any], key: str) -> None:
        self._take_settings(node, "settings")
        self._children(node)

    def _take_settings(self, node: dict[str, Any], key: str) -> None:
        """Check a SETTINGS clause and take it out of the tree into `found.settings` (the lowest value wins)."""
        clause = node.pop(key, None)
        if clause is None:
            return
        for name in clause.get("default_settings") or []:
            raise QueryRejected(f"SETTINGS {name} = DEFAULT is not allowed: {_LIMITS_ONLY}")
        for parameter in clause.get("query_parameters") or []:
            raise QueryRejected(f"SETTINGS param_{parameter.get('name', '')} is not allowed: query parameters "
                                "come with the request, never in the statement")
        extra = sorted(k for k, v in clause.items() if k not in ("type", "changes") and v)
        if extra:
            raise QueryRejected(f"SETTINGS with {', '.join(extra)} is not allowed: {_LIMITS_ONLY}")
        for change in clause.get("changes") or []:
            name, value = change.get("name", ""), (change.get("value") or {}).get("value")
            if name not in LIMIT_SETTINGS:
                raise QueryRejected(f"SETTINGS {name} is not allowed: {_LIMITS_ONLY}")
            number = _limit_value(name, value)
            asked = self.found.settings.get(name)
            self.found.settings[name] = number if asked is None else min(asked, number)

    def _Literal(self, node: dict[str, Any], key: str) -> None:
        pass  # values only

    def _QueryParameter(self, node: dict[str, Any], key: str) -> None:
        if node.get("param_type") == "Identifier":
            raise QueryRejected(f"query parameter {{{node.get('name')}:Identifier}} may not stand for a name: "
                                "parameters are values only")

    def _Function(self, node: dict[str, Any], key: str) -> None:
        name = node.get("name", "")
        if problem := function_problem(name, table_function=key == "table_function"):
            raise QueryRejected(problem)
        arguments = (node.get("arguments") or {}).get("children") or []
        if name.lower() in IN_FUNCTIONS and len(arguments) == 2 and arguments[1].get("type") == "Identifier":
            self._in_table(arguments[1])
        self._children(node)

    def _ColumnsApplyTransformer(self, node: dict[str, Any], key: str) -> None:
        if "func_name" in node and (problem := function_problem(node["func_name"])):
            raise QueryRejected(problem)
        self._children(node)

    def _TableExpression(self, node: dict[str, Any], key: str) -> None:
        table = node.get("database_and_table_name")
        if table is not None:
            view = self._table(table)
            if view is not None:
                self.found.views.append((node, view))
        self._children(node)

    def _TableIdentifier(self, node: dict[str, Any], key: str) -> None:
        self._children(node)  # checked by its TableExpression; a parameter for a name is refused here

    def _table(self, node: dict[str, Any]) -> str | None:
        """Check a table read; return the SELECT a system table is read through, if any."""
        parts = node.get("name_parts") or [node.get("name", "")]
        name = ".".join(parts)
        if not name:
            self._children(node)
            raise QueryRejected("a table must be named in the query itself")
        if len(parts) == 1 and (name in PUBLIC_TABLES or name in self.ctes):
            return None
        if len(parts) == 2 and parts[0] == self.catalog.database and parts[1] in PUBLIC_TABLES:
            return None
        if len(parts) == 2 and parts[0] == "system" and parts[1] in SYSTEM_TABLES:
            return SYSTEM_TABLES[parts[1]]
        raise QueryRejected(_unreadable(name, parts))

    def _in_table(self, node: dict[str, Any]) -> None:
        parts = node.get("name_parts") or [node.get("name", "")]
        if len(parts) > 1:
            raise QueryRejected(f"IN {'.'.join(parts)}: write IN (SELECT ...) to test against a table")
        name = parts[0]
        if name in self.catalog.tables and name not in PUBLIC_TABLES and name not in self.ctes:
            raise QueryRejected(_unreadable(name, parts))


_LIMITS_ONLY = ("a query may only lower the server's limits: " + ", ".join(LIMIT_SETTINGS)
                + " (the server's own values hold where they are lower)")


def _limit_value(name: str, value: Any) -> float | int:
    """The number a SETTINGS value gives `name`, or QueryRejected: a limit takes a number of at least 0."""
    kind = LIMIT_SETTINGS[name]
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = float(value)
        if number < 0 or number != number or (kind is int and not number.is_integer()):
            raise ValueError
    except (ValueError, TypeError, OverflowError):
        shown = "NULL" if value is None else repr(value)
        raise QueryRejected(f"SETTINGS {name} = {shown}: give a number of at least 0"
                            + (", a whole one" if kind is int else "")) from None
    return int(number) if kind is int else number


def _unreadable(name: str, parts: list[str]) -> str:
    if len(parts) == 2 and parts[0] == "system":
        readable = ", ".join(f"system.{t}" for t in SYSTEM_TABLES)
        return f"table {name} is not readable; of the system tables only {readable} are"
    if len(parts) > 1:
        return f"table {name} is not readable: users' SQL reads this database's public tables only"
    return f"table {name} is not readable; the readable tables are {', '.join(PUBLIC_TABLES)}"


def show_as_select(tree: dict[str, Any], catalog: Catalog) -> str:
    """SHOW TABLES / SHOW COLUMNS as the SELECT over system tables that answers it."""
    kind = tree["type"]
    verb = "SHOW TABLES" if kind == "ShowTablesQuery" else "SHOW COLUMNS"
    if "out_file" in tree or tree.get("is_into_outfile_with_stdout"):
        raise QueryRejected("INTO OUTFILE is not allowed: results come back to you, never into a server file")
    if "format_ast" in tree:
        raise QueryRejected("FORMAT clauses are not allowed: the server picks the result format")
    if "settings_ast" in tree:
        raise QueryRejected(SETTINGS_REFUSED)
    known = {"type", "like", "not_like", "case_insensitive_like", "limit_length", "is_outfile_append",
             "is_outfile_truncate", "is_into_outfile_with_stdout"}
    known |= {"from"} if kind == "ShowTablesQuery" else {"table", "database"}
    extra = sorted(k for k, v in tree.items() if k not in known and v not in (False, "", None))
    if extra:
        raise QueryRejected(f"{verb} may not use {', '.join(extra)}: only {verb} [FROM table] [LIKE 'pattern'] "
                            "[LIMIT n] is allowed")
    database = tree.get("database") or (tree.get("from") or {}).get("name") or catalog.database
    if database != catalog.database:
        raise QueryRejected(f"{verb} FROM {database}: users' SQL reads this database's public tables only")
    where = []
    if kind == "ShowTablesQuery":
        select, column, order = "SELECT name FROM system.tables", "name", "name"
    else:
        table = tree.get("table", "")
        if table not in PUBLIC_TABLES:
            raise QueryRejected(_unreadable(table, [table]))
        select = ("SELECT name AS field, type, if(startsWith(type, 'Nullable('), 'YES', 'NO') AS null, "
                  "if(is_in_primary_key, 'PRI', '') AS key, default_expression AS default, '' AS extra "
                  "FROM system.columns")
        where.append(f"table = {quote(table)}")
        column, order = "name", "position"
    if "like" in tree:
        operator = ("NOT " if tree.get("not_like") else "") + ("ILIKE" if tree.get("case_insensitive_like") else "LIKE")
        where.append(f"{column} {operator} {quote(tree['like'])}")
    sql = select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order}"
    limit = tree.get("limit_length")
    if limit is not None:
        value = (limit.get("value") or {}).get("value") if limit.get("type") == "Literal" else None
        if not isinstance(value, int):
            raise QueryRejected(f"{verb} ... LIMIT takes a number")
        sql += f" LIMIT {value}"
    return sql


def describe_as_select(formatted: str, catalog: Catalog) -> str | None:
    """DESCRIBE TABLE [db.]t (as formatQuery writes it) as the SELECT over system.columns; None if not one.
    `db` may only be the store's database (Grafana names it: DESCRIBE TABLE "default"."metrics")."""
    match = _DESCRIBE.fullmatch(formatted.strip())
    if match is None:
        return None
    database, table = (match.group(1) or "").strip("`"), match.group(2)
    if database and database != catalog.database:
        raise QueryRejected(_unreadable(f"{database}.{table}", [database, table]))
    if table not in PUBLIC_TABLES:
        raise QueryRejected(_unreadable(table, [table]))
    return ("SELECT name, type, default_kind AS default_type, default_expression, comment, "
            f"compression_codec AS codec_expression FROM system.columns WHERE table = {quote(table)} "
            "ORDER BY position")


def graft(inspection: Inspection, views: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The tree with each system-table read replaced by a subquery over its SELECT (parsed in `views`),
    and the columns named through that table (`system.columns.comment`, `columns.comment` under an
    alias) named through the subquery's alias, as ClickHouse resolved them on the table."""
    aliases: dict[str, str | None] = {}  # table -> the alias its rows now go by (None: read twice, ambiguous)
    for expression, _ in inspection.views:
        table = expression["database_and_table_name"]
        name = (table.get("name_parts") or [table.get("name")])[-1]
        aliases[name] = None if name in aliases else table.get("alias") or name
    _requalify(inspection.tree, {name: alias for name, alias in aliases.items() if alias})
    for expression, view in inspection.views:  # after: the views' own trees are shared, never renamed
        table = expression.pop("database_and_table_name")
        expression.pop("final", None)
        alias = table.get("alias") or (table.get("name_parts") or [table.get("name")])[-1]
        expression["subquery"] = {"type": "Subquery", "alias": alias, "children": [views[view]]}
    return inspection.tree


def _requalify(node: Any, aliases: dict[str, str]) -> None:
    """Rename `system.t.x` (and `t.x`, where t has an alias) to `alias.x` for each grafted table t."""
    if isinstance(node, list):
        for item in node:
            _requalify(item, aliases)
        return
    if not isinstance(node, dict):
        return
    parts = node.get("name_parts") or []
    if node.get("type") == "Identifier" and len(parts) >= 2:
        renamed = None
        if parts[0] == "system" and parts[1] in aliases:
            renamed = [aliases[parts[1]], *parts[2:]]
        elif aliases.get(parts[0], parts[0]) != parts[0]:
            renamed = [aliases[parts[0]], *parts[1:]]
        if renamed:
            node["name"] = ".".join(renamed)
            node.pop("name_parts")
            if len(renamed) > 1:
                node["name_parts"] = renamed
    for value in node.values():
        _requalify(value, aliases)


def quote(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
