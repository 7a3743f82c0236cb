"""Benchmarks start their ingests without the SQL interface (`--sql-port 0`): its default port, 8123,
may be held by a `pulse up`, a test run's ingest or another bench, and a bench must run beside them."""

from __future__ import annotations

import contextlib
import socket

import pytest

from pulse.client import QueryClient


@contextlib.contextmanager
def default_sql_port_taken():
    """127.0.0.1:8123 held by someone else while the block runs (by us, or by whoever has it already)."""
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 8123))
            holder.listen()
        except OSError:
            pass  # taken already: the case this test is about
        yield


@pytest.mark.parametrize("starter", ["bench.harness.ingest_process", "bench.dashboard_queries._ingest"])
def test_a_benchs_ingest_starts_while_the_default_sql_port_is_taken(monkeypatch, tmp_path, starter):
    monkeypatch.delenv("PULSE_SQL_PORT")  # as a bench runs: from a shell, without the tests' setting
    monkeypatch.setenv("PULSE_DIR", str(tmp_path / "pulse"))  # the starters point it at their own; restored after
    if starter == "bench.harness.ingest_process":
        from bench.harness import ingest_process

        started = ingest_process()
    else:
        from bench.dashboard_queries import _ingest

        (tmp_path / "data").mkdir()
        started = _ingest(tmp_path / "data")
    with default_sql_port_taken(), started as address:
        address = address[0] if isinstance(address, tuple) else address
        client = QueryClient(address, api_key="")
        try:
            assert client.query("SELECT 1 AS one", {}).to_pylist() == [{"one": 1}]
        finally:
            client.close()
