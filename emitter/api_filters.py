"""W&B's run filters and orders (a MongoDB-like subset) as ClickHouse SQL with bound parameters.

`Filters.where({"$and": [{"config.lr": {"$lt": 0.1}}, {"state": "finished"}]})` gives SQL text made
only of the fragments below and parameter names (`{f0:Float64}`); every value a user gave, field
names inside config and summary included, travels as a bound parameter. Operators and fields are
an allowlist; anything else is a ValueError naming it.

Fields: `id`/`run_id`, `name`/`display_name`, `state`, `group`, `job_type`, `notes`, `sweep`,
`host`, `tags`, `created_at`/`updated_at`/`heartbeat_at` (compared with ISO text or datetimes),
`config.<key>` and `summary_metrics.<key>` (also `summary.<key>`): a key with dots is looked up
as it is first, then as a path into nested objects, then without a trailing `.value` (W&B's
`config.lr.value` spelling). Operators: `$and`, `$or`, `$nor`, `$not`, `$eq`, `$ne`, `$gt`,
`$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$exists`, `$regex` (RE2).
"""

from __future__ import annotations

import datetime
from typing import Any

TEXT_COLUMNS = {"id": "run_id", "run_id": "run_id", "name": "name", "display_name": "name", "displayName": "name",
                "state": "toString(state)", "group": "`group`", "job_type": "toString(job_type)",
                "jobType": "toString(job_type)", "notes": "notes", "sweep": "sweep_id", "sweep_id": "sweep_id",
                "host": "host"}
TIME_COLUMNS = {"created_at": "created_at", "createdAt": "created_at", "updated_at": "updated_at",
                "updatedAt": "updated_at", "heartbeat_at": "heartbeat_at", "heartbeatAt": "heartbeat_at"}
DOCUMENTS = {"config": "config", "summary_metrics": "summary_json", "summary": "summary_json"}
COMPARISONS = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = (*COMPARISONS, "$in", "$nin", "$exists", "$regex")
MAX_IN = 10_000
NUMBER_TYPES = "('Int64', 'UInt64', 'Double')"


class Filters:
    """Compiles filters and orders; `parameters` holds every value bound so far."""

    def __init__(self) -> None:
        self.parameters: dict[str, Any] = {}

    def bind(self, value: Any, sql_type: str) -> str:
        name = f"f{len(self.parameters)}"
        self.parameters[name] = value
        return f"{{{name}:{sql_type}}}"

    # -- WHERE ----------------------------------------------------------------------------------

    def where(self, filters: dict | None) -> str:
        """A SQL condition for `filters` ("1" when there are none)."""
        if not filters:
            return "1"
        if not isinstance(filters, dict):
            raise ValueError(f"filters must be a dict, not {type(filters).__name__}")
        parts = [self._clause(field, spec) for field, spec in filters.items()]
        return "(" + " AND ".join(parts) + ")"

    def _clause(self, field: str, spec: Any) -> str:
        if field in ("$and", "$or", "$nor"):
            if not isinstance(spec, list) or not spec:
                raise ValueError(f"{field} takes a non-empty list of filters")
            joined = (" AND " if field == "$and" else " OR ").join(self.where(f) for f in spec)
            return f"NOT ({joined})" if field == "$nor" else f"({joined})"
        if field == "$not":
            return f"NOT {self.where(spec)}"
        if not isinstance(field, str) or field.startswith("$"):
            raise ValueError(f"unknown filter operator {field!r}; use one of $and, $or, $nor, $not, "
                             f"{', '.join(OPERATORS)}")
        operators = spec if isinstance(spec, dict) and spec and all(
            isinstance(k, str) and k.startswith("$") for k in spec) else {"$eq": spec}
        return "(" + " AND ".join(self._test(field, op, value) for op, value in operators.items()) + ")"

    def _test(self, field: str, op: str, value: Any) -> str:
        if op not in OPERATORS:
            raise ValueError(f"unknown filter operator {op!r} for {field!r}; use one of {', '.join(OPERATORS)}")
        if op in ("$in", "$nin"):
            if not isinstance(value, (list, tuple)) or len(value) > MAX_IN:
                raise ValueError(f"{op} for {field!r} takes a list (of at most {MAX_IN:,} values)")
            found = " OR ".join(self._test(field, "$eq", v) for v in value) or "0"
            return f"({found})" if op == "$in" else f"NOT ({found})"
        if op == "$ne":
            return f"NOT {self._test(field, '$eq', value)}"
        if field == "tags":
            return self._tags(op, value)
        if field in TEXT_COLUMNS:
            return self._column(TEXT_COLUMNS[field], op, value, field)
        if field in TIME_COLUMNS:
            return self._time(TIME_COLUMNS[field], op, value, field)
        document, _, key = field.partition(".")
        if document in DOCUMENTS and key:
            return self._json(DOCUMENTS[document], key, op, value)
        raise ValueError(f"cannot filter on {field!r}: use one of {', '.join([*TEXT_COLUMNS, *TIME_COLUMNS, 'tags'])}, "
                         "config.<key> or summary_metrics.<key>")

    def _column(self, column: str, op: str, value: Any, field: str) -> str:
        if op == "$exists":
            return "1" if value else "0"
        if op == "$regex":
            return f"match({column}, {self.bind(_text(value, field), 'String')})"
        return f"{column} {COMPARISONS[op]} {self.bind(_text(value, field), 'String')}"

    def _time(self, column: str, op: str, value: Any, field: str) -> str:
        if op in ("$exists", "$regex"):
            raise ValueError(f"{op} does not apply to {field!r}")
        if isinstance(value, datetime.datetime):
            value = (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).isoformat()
        bound = self.bind(_text(value, field), "String")
        return f"{column} {COMPARISONS[op]} parseDateTime64BestEffort({bound}, 6, 'UTC')"

    def _tags(self, op: str, value: Any) -> str:
        if op == "$exists":
            return "notEmpty(tags)" if value else "empty(tags)"
        if op != "$eq":
            raise ValueError(f"tags take a tag, $in, $nin or $exists, not {op}")
        return f"has(tags, {self.bind(_text(value, 'tags'), 'String')})"

    def _json(self, document: str, key: str, op: str, value: Any) -> str:
        """A test on a key of a JSON document, at the first of its candidate paths that exists."""
        paths = _paths(key)
        branches, exists = [], []
        for path in paths:
            args = ", ".join([document] + [self.bind(part, "String") for part in path])
            exists.append(f"JSONHas({args})")
            branches.append(f"JSONHas({args}), {self._json_test(args, op, value)}")
        if op == "$exists":
            found = "(" + " OR ".join(exists) + ")"
            return found if value else f"NOT {found}"
        missing = "1" if op == "$eq" and value is None else "0"
        return f"multiIf({', '.join(branches)}, {missing})"

    def _json_test(self, args: str, op: str, value: Any) -> str:
        if op == "$exists":
            return "1"
        if op == "$regex":
            pattern = self.bind(str(value), "String")
            return f"JSONType({args}) = 'String' AND match(JSONExtractString({args}), {pattern})"
        sql = COMPARISONS[op]
        if value is None:
            if op != "$eq":
                raise ValueError(f"{op} takes a value, not None")
            return f"JSONType({args}) = 'Null'"
        if isinstance(value, bool):
            return f"JSONType({args}) = 'Bool' AND JSONExtractBool({args}) {sql} {self.bind(value, 'Bool')}"
        if isinstance(value, (int, float)):
            return (f"JSONType({args}) IN {NUMBER_TYPES} AND "
                    f"JSONExtractFloat({args}) {sql} {self.bind(float(value), 'Float64')}")
        if isinstance(value, str):
            return f"JSONType({args}) = 'String' AND JSONExtractString({args}) {sql} {self.bind(value, 'String')}"
        raise ValueError(f"cannot compare a config or summary value with {type(value).__name__} {value!r:.80}")

    # -- ORDER BY -------------------------------------------------------------------------------

    def order(self, order: str | None) -> str:
        """ORDER BY terms for W&B's `order` ("-created_at", "+summary_metrics.loss", "config.lr")."""
        order = (order or "-created_at").strip()
        descending = order.startswith("-")
        field = order.lstrip("+-")
        direction = "DESC" if descending else "ASC"
        if field in TEXT_COLUMNS:
            terms = [f"{TEXT_COLUMNS[field]} {direction}"]
        elif field in TIME_COLUMNS:
            terms = [f"{TIME_COLUMNS[field]} {direction}"]
        elif field.partition(".")[0] in DOCUMENTS and field.partition(".")[2]:
            document, _, key = field.partition(".")
            number, text, found = [], [], []
            for path in _paths(key):
                args = ", ".join([DOCUMENTS[document]] + [self.bind(part, "String") for part in path])
                found.append(f"JSONHas({args})")
                number.append(f"JSONHas({args}), JSONExtractFloat({args})")
                text.append(f"JSONHas({args}), JSONExtractString({args})")
            # Runs without the key come last whichever the direction, as in W&B's table.
            terms = [f"NOT ({' OR '.join(found)})", f"multiIf({', '.join(number)}, 0) {direction}",
                     f"multiIf({', '.join(text)}, '') {direction}"]
        else:
            raise ValueError(f"cannot order by {field!r}: use one of {', '.join([*TEXT_COLUMNS, *TIME_COLUMNS])}, "
                             "config.<key> or summary_metrics.<key>, with - for descending")
        return ", ".join(terms + ["run_id"])  # run_id last: pages never overlap or skip


def _paths(key: str) -> list[list[str]]:
    """Where a dotted key may live: as one key, as a nested path, and without W&B's trailing `.value`."""
    parts = key.split(".")
    paths = [[key]]
    if len(parts) > 1:
        paths.append(parts)
        if parts[-1] == "value":
            paths.append(parts[:-1] if len(parts) > 2 else [parts[0]])
    unique = []
    for path in paths:
        if path not in unique:
            unique.append(path)
    return unique


def _text(value: Any, field: str) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{field!r} compares with text, not {type(value).__name__} {value!r:.80}")
