"""Everything the dashboard reads, and the only place its SQL lives.

Values from users (project names, run ids, metric keys) are always bound as
ClickHouse query parameters (`{name:Type}`), never spliced into SQL text.

Example:
    source = Source()                       # PULSE_SERVER or PULSE_CLICKHOUSE_URL
    for project in source.projects():
        runs = source.runs(project)         # a pyarrow.Table
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from pulse.client import QueryClient

Query = Callable[[str, dict[str, Any]], pa.Table]

_PROJECTS = "SELECT DISTINCT project FROM runs ORDER BY project"

_RUNS = """
SELECT run_id, name, state, created_at, heartbeat_at, summary
FROM runs FINAL
WHERE project = {project:String}
ORDER BY created_at DESC, run_id
"""

_METRIC_KEYS = """
SELECT DISTINCT key
FROM metrics
WHERE project = {project:String} AND run_id IN {run_ids:Array(String)}
ORDER BY key
"""

# Per run: split [first step, last step] into at most {buckets} equal-width
# buckets and keep min, max and the last value of each, so a chart of a
# million points costs as much as one of a thousand and a one-step spike still
# shows in `max`. Aggregates, not FINAL: a retried point that has not yet
# collapsed repeats the same step and value, which changes none of them.
_SERIES = """
SELECT run_id, step_hi AS step, value_min AS min, value_max AS max, value_last AS last
FROM (
    SELECT run_id,
           intDiv(step - bounds.first_step, bounds.width) AS bucket,
           min(value) AS value_min,
           max(value) AS value_max,
           argMax(value, step) AS value_last,
           max(step) AS step_hi
    FROM metrics
    INNER JOIN (
        SELECT run_id, min(step) AS first_step,
               intDiv(max(step) - min(step), {buckets:UInt32}) + 1 AS width
        FROM metrics
        WHERE project = {project:String} AND key = {key:String}
          AND run_id IN {run_ids:Array(String)}
        GROUP BY run_id
    ) AS bounds USING (run_id)
    WHERE project = {project:String} AND key = {key:String}
      AND run_id IN {run_ids:Array(String)}
    GROUP BY run_id, bucket
)
ORDER BY run_id, step
"""


class DataError(RuntimeError):
    """The store could not answer; the message is the server's (or ClickHouse's), fit to show."""


class Source:
    """Reads the store through the ingest's Query RPC, or a ClickHouse server directly.

    A `clickhouse_url` of `http(s)://...` (default: $PULSE_CLICKHOUSE_URL) is read
    with clickhouse-connect; anything else goes through the ingest at `server`
    (default: $PULSE_SERVER), which is the only way to read the embedded store.
    """

    def __init__(self, server: str | None = None, clickhouse_url: str | None = None) -> None:
        url = clickhouse_url if clickhouse_url is not None else os.environ.get("PULSE_CLICKHOUSE_URL", "")
        if url.startswith(("http://", "https://")):
            self.address = _without_password(url)
            try:
                self._query = _clickhouse_query(url)
            except Exception as exc:  # the driver asks the server for its version at once
                raise DataError(f"{self.address}: {_first_line(exc)}") from exc
        else:
            client = QueryClient(server or os.environ.get("PULSE_SERVER") or None)
            self.address = client.server
            self._query = client.query

    def projects(self) -> list[str]:
        """Every project that has runs, sorted."""
        return self._run(_PROJECTS, {}).column("project").to_pylist()

    def runs(self, project: str) -> pa.Table:
        """The project's runs, newest first: run_id, name, state, created_at, heartbeat_at, summary."""
        return self._run(_RUNS, {"project": project})

    def metric_keys(self, project: str, run_ids: Sequence[str]) -> list[str]:
        """Metric keys logged by any of `run_ids`, sorted."""
        if not run_ids:
            return []
        table = self._run(_METRIC_KEYS, {"project": project, "run_ids": list(run_ids)})
        return table.column("key").to_pylist()

    def series(self, project: str, run_ids: Sequence[str], key: str, buckets: int = 800) -> pa.Table:
        """`key` of each run downsampled in ClickHouse to at most `buckets` points per run.

        Columns: run_id, step (the last step in the bucket), min, max, last (the value at `step`).
        """
        if not run_ids:
            return pa.table({"run_id": pa.array([], pa.string()), "step": pa.array([], pa.int64()),
                             "min": pa.array([], pa.float64()), "max": pa.array([], pa.float64()),
                             "last": pa.array([], pa.float64())})
        if buckets < 1:
            raise ValueError(f"buckets must be at least 1, not {buckets}")
        return self._run(_SERIES, {"project": project, "run_ids": list(run_ids), "key": key,
                                   "buckets": int(buckets)})

    def _run(self, sql: str, parameters: dict[str, Any]) -> pa.Table:
        try:
            return self._query(sql, parameters)
        except Exception as exc:  # every driver has its own errors; the page shows the message
            raise DataError(_first_line(exc)) from exc


def _clickhouse_query(url: str) -> Query:
    import clickhouse_connect  # deferred: only the direct-to-ClickHouse mode needs it

    # No session: the Streamlit server shares one client between browser sessions, and
    # ClickHouse refuses concurrent queries in one session.
    client = clickhouse_connect.get_client(dsn=url, autogenerate_session_id=False)
    return lambda sql, parameters: client.query_arrow(sql, parameters=parameters)


def _first_line(exc: Exception) -> str:
    """The server's message without the driver's wrapping and the echoed SQL."""
    text = str(exc).strip() or type(exc).__name__
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    return text.splitlines()[0][:2000]


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
