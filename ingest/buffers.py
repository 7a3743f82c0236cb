"""Per-table buffers that flush by size or age, with acks after commit.

Every `add` joins the current *generation*; the flusher takes a whole
generation, writes one insert per table plus the runs rows it changed, and
only then marks the generation committed, which is what acks wait for. While
the store fails, the flusher retries the same rows with backoff and new rows
pile up in the next generation until the bound, where `add` pushes back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pyarrow as pa

from .runs import RunRegistry
from .storage import Store

log = logging.getLogger(__name__)


class Backpressure(Exception):
    """Buffers are full; the client should retry after `retry_after_ms`."""

    def __init__(self, rows: int, retry_after_ms: int) -> None:
        super().__init__(f"ingest buffers are full ({rows} rows waiting for the store); "
                         f"retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


class Buffers:
    def __init__(self, store: Store, registry: RunRegistry, *, flush_rows: int = 250_000,
                 flush_interval: float = 0.5, max_rows: int = 4_000_000, reap_interval: float = 1.0,
                 on_store_health=lambda healthy: None) -> None:
        self._store = store
        self._registry = registry
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval
        self.max_rows = max_rows
        self._reap_interval = reap_interval
        self._on_store_health = on_store_health  # told when inserts start failing and when they recover
        self._cond = threading.Condition()
        self._pending: dict[str, list[pa.Table]] = defaultdict(list)
        self._rows = 0
        self._inflight_rows = 0
        self._has_work = False
        self._oldest = 0.0
        self._generation = 1
        self._committed = 0
        self._on_commit: dict[int, list[Callable[[], None]]] = defaultdict(list)
        self._closing = False
        self.failing_since: float | None = None
        self.last_error = ""
        self.inserts = 0
        self._thread = threading.Thread(target=self._run, name="pulse-flusher", daemon=True)
        self._thread.start()

    def add(self, tables: dict[str, pa.Table]) -> int:
        """Buffer rows; return the generation whose commit covers them."""
        rows = sum(t.num_rows for t in tables.values())
        with self._cond:
            if self._closing:
                raise Backpressure(self._rows, 1000)
            waiting = self._rows + self._inflight_rows
            if rows and waiting + rows > self.max_rows and waiting:
                raise Backpressure(waiting, 2000 if self.failing_since else 250)
            for name, table in tables.items():
                self._pending[name].append(table)
            if not self._has_work:
                self._has_work, self._oldest = True, time.monotonic()
            self._rows += rows
            if self._rows >= self.flush_rows:
                self._cond.notify_all()
            return self._generation

    def wait(self, generation: int, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._committed >= generation, timeout)

    def when_committed(self, generation: int, callback: Callable[[], None]) -> None:
        """Call `callback` once `generation` is committed: now, or later from the flusher thread.

        For waiters that must not block a thread (the asyncio stream handlers); the callback
        must be quick and thread-safe (e.g. `loop.call_soon_threadsafe`).
        """
        with self._cond:
            if self._committed < generation:
                self._on_commit[generation].append(callback)
                return
        callback()

    @property
    def committed(self) -> int:
        return self._committed

    def close(self, timeout: float = 30.0) -> None:
        """Flush everything buffered, then stop the flusher."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _due(self) -> bool:
        if not self._has_work:
            return False
        return (self._closing or self._rows >= self.flush_rows
                or time.monotonic() - self._oldest >= self.flush_interval)

    def _run(self) -> None:
        next_reap = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._due() or (self._closing and not self._has_work),
                                    timeout=self.flush_interval / 2)
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + self._reap_interval
                    if self._registry.reap() and not self._has_work:
                        self._has_work, self._oldest = True, 0.0  # write the crashed runs now
                if not self._due():
                    if self._closing and not self._has_work:
                        return
                    continue
                taken, self._pending = self._pending, defaultdict(list)
                generation, self._generation = self._generation, self._generation + 1
                self._inflight_rows, self._rows, self._has_work = self._rows, 0, False
            self._commit(taken)
            with self._cond:
                self._committed, self._inflight_rows = generation, 0
                self._cond.notify_all()
                due = [self._on_commit.pop(g) for g in [g for g in self._on_commit if g <= generation]]
            for callback in (c for callbacks in due for c in callbacks):
                try:
                    callback()
                except Exception:  # a waiter's loop that closed must not stop the flusher
                    log.exception("a commit callback failed")

    def _commit(self, taken: dict[str, list[pa.Table]]) -> None:
        runs, keys = self._registry.drain()
        tables = {name: _combine(parts) for name, parts in taken.items()}
        if runs is not None:
            tables["runs"] = runs
        backoff = 0.1
        while tables:
            name, table = next(iter(tables.items()))
            try:
                self._store.insert(name, table)
            except Exception as exc:  # the store is away or failing: keep the rows, retry
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                    self._on_store_health(False)
                    log.error("insert into %s failed, retrying until it succeeds: %s", name, exc)
                self.last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            if self.failing_since is not None:
                log.warning("store recovered after %.1f s", time.monotonic() - self.failing_since)
                self.failing_since = None
                self._on_store_health(True)
            self.inserts += 1
            del tables[name]
        self._registry.written(keys)


def _combine(parts: list[pa.Table]) -> pa.Table:
    if len(parts) == 1:
        return parts[0]
    return pa.concat_tables(parts).unify_dictionaries().combine_chunks()
