"""`pulse ingest` whose store fails every insert for a while: a fault-injection wrapper around the real backend.

    python tests/faults/flaky_ingest.py --fail-after 2 --fail-for 20 -- --data DIR --port P

Reads and queries go to the real store throughout; inserts raise for
`--fail-for` seconds starting `--fail-after` seconds after the first insert,
as a ClickHouse server that went away would.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

import pyarrow as pa

from ingest.server import serve
from ingest.storage import ClickHouseStore, open_store
from pulse.cli import _ingest_config, build_parser


class FlakyStore:
    def __init__(self, store: ClickHouseStore, fail_after: float, fail_for: float) -> None:
        self._store = store
        self.url = store.url
        self._fail_after, self._fail_for = fail_after, fail_for
        self._first_insert: float | None = None
        self._lock = threading.Lock()
        self.refused = 0

    def insert(self, table: str, data: pa.Table) -> None:
        with self._lock:
            now = time.monotonic()
            if self._first_insert is None:
                self._first_insert = now
            start = self._first_insert + self._fail_after
            if start <= now < start + self._fail_for:
                self.refused += 1
                if self.refused == 1:
                    print(f"flaky store: failing inserts for {self._fail_for:g} s", flush=True)
                raise ConnectionError(f"injected fault: the store refuses inserts (#{self.refused})")
        self._store.insert(table, data)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fail-after", type=float, default=2.0)
    parser.add_argument("--fail-for", type=float, default=20.0)
    parser.add_argument("ingest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    ingest_args = build_parser().parse_args(["ingest", *[a for a in args.ingest_args if a != "--"]])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = _ingest_config(ingest_args)
    store = FlakyStore(open_store(config.clickhouse_url), args.fail_after, args.fail_for)
    serve(config, store=store)


if __name__ == "__main__":
    sys.exit(main())
