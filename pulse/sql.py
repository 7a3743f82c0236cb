"""`pulse sql`: read-only SQL through the ingest's Query RPC, or straight to a ClickHouse server."""

from __future__ import annotations

import csv
import json
import sys

import pyarrow as pa


def run_sql(query: str, fmt: str = "table", server: str | None = None, clickhouse: str | None = None) -> int:
    try:
        table = _run(query, server, clickhouse)
    except Exception as exc:
        print(f"pulse sql: {exc}", file=sys.stderr)
        return 1
    write(table, fmt, sys.stdout)
    return 0


def _run(query: str, server: str | None, clickhouse: str | None) -> pa.Table:
    if clickhouse:
        from ingest.query import run_query
        from ingest.storage import ClickHouseStore

        store = ClickHouseStore(clickhouse)
        try:
            return run_query(store, query)
        finally:
            store.close()
    from pulse.client import QueryClient

    client = QueryClient(server)
    try:
        return client.query(query)
    finally:
        client.close()


def write(table: pa.Table, fmt: str, out) -> None:
    rows = table.to_pylist()
    names = table.column_names
    if fmt == "json":
        json.dump(rows, out, default=str, allow_nan=True)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(names)
        for row in rows:
            writer.writerow([row[n] for n in names])
    else:
        cells = [[str(row[n]) for n in names] for row in rows]
        widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
        out.write("  ".join(n.ljust(w) for n, w in zip(names, widths)).rstrip() + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
        for r in cells:
            out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
        out.write(f"({len(rows)} rows)\n")
