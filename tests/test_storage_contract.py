"""One storage contract, every backend: embedded chDB, ClickHouse over HTTP, a real server.

The HTTP backend is clickhouse-connect's real HTTP client talking to the
fixture in tests/fixtures, which serves ClickHouse's HTTP interface from the
chDB engine (no ClickHouse server can run on the dev and CI machines). Set
PULSE_TEST_CLICKHOUSE_URL to run the suite against a real server too.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid

import numpy as np
import pyarrow as pa
import pytest

from fixtures.clickhouse_http import serve_clickhouse_http
from ingest.buffers import Buffers
from ingest.query import QueryRejected, run_query
from ingest.runs import RunRegistry
from ingest.storage import ClickHouseStore, migrate, migration_files, open_store
from ingest.validate import decode
from pulse.v1 import telemetry_pb2 as pb

BACKENDS = ["chdb", "http"] + (["server"] if os.environ.get("PULSE_TEST_CLICKHOUSE_URL") else [])
CONTRACT = {
    "runs": {"project", "run_id", "name", "group", "job_type", "tags", "notes", "sweep_id", "config", "state",
             "exit_code", "created_at", "updated_at", "heartbeat_at", "summary"},
    "metrics": {"project", "run_id", "key", "step", "ts", "value"},
    "system_metrics": {"project", "run_id", "host", "device", "key", "ts", "value"},
    "histograms": {"project", "run_id", "key", "step", "ts", "count", "sum", "min", "max", "nonfinite",
                   "bucket_edges", "bucket_counts"},
    "media": {"project", "run_id", "key", "step", "kind", "uri", "sha256", "mime", "width", "height", "caption"},
    "model_graphs": {"project", "run_id", "graph"},
    "alerts": {"project", "run_id", "ts", "level", "title", "text"},
    "sweeps": {"project", "sweep_id", "config", "state", "created_at", "updated_at"},
}


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    with contextlib.ExitStack() as stack:
        if request.param == "chdb":
            url = f"chdb://{tmp_path_factory.mktemp('chdb')}"
        elif request.param == "http":
            url = stack.enter_context(serve_clickhouse_http(tmp_path_factory.mktemp("http")))
        else:
            url = os.environ["PULSE_TEST_CLICKHOUSE_URL"]
        s = open_store(url)
        yield s
        s.close()


def scalars_batch(run_id: str, steps: range, seq: int = 1, start: bool = False) -> pb.Batch:
    b = pb.Batch(project="contract", run_id=run_id, stream_id=f"{run_id}.s", seq=seq)
    if start:
        b.events.append(pb.Event(start=pb.RunStart(name="contract run", created_at_us=1_700_000_000_000_000,
                                                   config_json='{"lr": 0.1}')))
    n = len(steps)
    b.scalars.keys.extend(["loss", "acc"])
    b.scalars.key_index.extend([0, 1] * n)
    b.scalars.step.extend(np.repeat(np.array(steps), 2).tolist())
    b.scalars.ts_us.extend([1_700_000_000_000_000 + s for s in np.repeat(np.array(steps), 2).tolist()])
    b.scalars.value.extend([float(s) for s in np.repeat(np.array(steps), 2).tolist()])
    return b


def test_migrations_apply_once_and_define_the_public_schema(store):
    assert migrate(store) == []  # already applied by open_store
    versions = [row[0] for row in store.query_rows("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [v for v, _, _ in migration_files()]
    for table, columns in CONTRACT.items():
        found = {row[0] for row in store.query_rows(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
            {"t": table})}
        assert columns <= found, f"{table} lacks {columns - found}"


def test_retried_points_collapse_so_final_counts_each_point_once(store):
    run_id = uuid.uuid4().hex[:8]
    table = decode(scalars_batch(run_id, range(10_000))).tables["metrics"]
    store.insert("metrics", table)
    store.insert("metrics", table.slice(5_000))  # a retry of the second half
    rows = store.query_rows("SELECT count(), sum(value) FROM metrics FINAL WHERE run_id = {r:String}", {"r": run_id})
    assert rows == [(20_000, 2 * sum(range(10_000)))]


def test_arrow_round_trip_keeps_types_and_special_values(store):
    run_id = uuid.uuid4().hex[:8]
    b = scalars_batch(run_id, range(3))
    b.scalars.value[:] = [float("nan"), float("inf"), float("-inf"), 1e-300, -0.0, 1.5]
    store.insert("metrics", decode(b).tables["metrics"])
    got = store.query_arrow("SELECT key, step, ts, value FROM metrics FINAL WHERE run_id = {r:String} "
                            "ORDER BY step, key", {"r": run_id})
    values = got.column("value").to_pylist()
    assert np.isnan(values[1]) and values[0] == float("inf")
    assert values[2:] == [1e-300, float("-inf"), 1.5, -0.0]
    assert got.column("step").to_pylist() == [0, 0, 1, 1, 2, 2]
    assert got.column("ts")[0].value == 1_700_000_000_000_000


def test_hostile_names_round_trip_through_bound_parameters(store):
    hostile = ["it's", "back\\slash", "'; DROP TABLE metrics; --", "{r:String}", "ünïcødé 🚀", "percent%_like"]
    b = pb.Batch(project="contract", run_id="hostile", stream_id="h.s", seq=1)
    b.scalars.keys.extend(hostile)
    b.scalars.key_index.extend(range(len(hostile)))
    b.scalars.step.extend([0] * len(hostile))
    b.scalars.ts_us.extend([1_700_000_000_000_000] * len(hostile))
    b.scalars.value.extend(range(len(hostile)))
    store.insert("metrics", decode(b).tables["metrics"])
    for i, key in enumerate(hostile):
        rows = store.query_rows("SELECT value FROM metrics FINAL WHERE run_id = 'hostile' AND key = {k:String}",
                                {"k": key})
        assert rows == [(float(i),)], key
    tables = "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'metrics'"
    assert store.query_rows(tables)[0][0] == 1  # still there


def test_run_lifecycle_survives_a_new_registry(store):
    run_id = uuid.uuid4().hex[:8]
    registry = RunRegistry(store, heartbeat_timeout=60)
    buffers = Buffers(store, registry, flush_interval=0.05)
    start = scalars_batch(run_id, range(100), start=True)
    decoded = decode(start)
    registry.apply(start, decoded.events)
    assert buffers.wait(buffers.add(decoded.tables), timeout=30)
    finish = pb.Batch(project="contract", run_id=run_id, stream_id=f"{run_id}.s", seq=2, replay=True)  # pulse sync
    finish.events.append(pb.Event(finish=pb.RunFinish(state="failed", exit_code=1, error="ValueError: boom")))
    registry.apply(finish, list(finish.events))
    assert buffers.wait(buffers.add({}), timeout=30)
    buffers.close()

    later = RunRegistry(store).get("contract", run_id)  # a restarted ingest reads it back
    assert later["state"] == "failed" and later["error"] == "ValueError: boom"
    assert later["heartbeat_at"] > later["created_at"]  # a finish that gives no time leaves the last heartbeat
    assert later["config"] == '{"lr": 0.1}' and later["name"] == "contract run"
    assert later["created_at"] == 1_700_000_000_000_000


def test_a_run_ended_by_another_replica_is_not_crashed_by_the_one_that_streamed_it(store):
    run_id = uuid.uuid4().hex[:8]
    streaming = RunRegistry(store, heartbeat_timeout=0.2)  # the replica the trainer streamed to
    controller = RunRegistry(store)  # the sweep controller's replica, which ends the trial's run
    streaming_buffers = Buffers(store, streaming, flush_interval=0.05)
    controller_buffers = Buffers(store, controller, flush_interval=0.05)
    start = pb.Batch(project="contract", run_id=run_id, stream_id=f"{run_id}.s", seq=1)
    start.events.append(pb.Event(start=pb.RunStart(name="trial")))
    streaming.apply(start, list(start.events))
    assert streaming_buffers.wait(streaming_buffers.add({}), timeout=30)
    kill = pb.Batch(project="contract", run_id=run_id, stream_id=f"sweep-controller.{run_id}", seq=1, replay=True)
    kill.events.append(pb.Event(finish=pb.RunFinish(state="killed", exit_code=-15, error="stopped by the sweep")))
    controller.apply(kill, list(kill.events))
    assert controller_buffers.wait(controller_buffers.add({}), timeout=30)

    time.sleep(0.5)  # the streaming replica hears nothing more: past its heartbeat timeout
    assert streaming.reap() == []
    assert streaming.get("contract", run_id)["state"] == "killed"  # what the store says, read anew
    assert streaming_buffers.wait(streaming_buffers.add({}), timeout=30)
    [(state, error)] = store.query_rows("SELECT state, error FROM runs FINAL WHERE run_id = {r:String}",
                                        {"r": run_id})
    assert (state, error) == ("killed", "stopped by the sweep")
    streaming_buffers.close()
    controller_buffers.close()


def test_read_only_query_path_refuses_writes_and_outside_reads(store):
    assert run_query(store, "SELECT 1 AS one").to_pylist() == [{"one": 1}]
    for sql in ("INSERT INTO metrics (key) VALUES ('x')", "SELECT * FROM file('/etc/passwd')",
                "SELECT 1; SELECT 2", "ALTER TABLE metrics DELETE WHERE 1"):
        with pytest.raises(QueryRejected):
            run_query(store, sql)


def test_a_store_url_that_leads_nowhere_fails_fast_with_the_reason():
    with pytest.raises(Exception) as caught:
        ClickHouseStore("http://127.0.0.1:1/")
    assert "Connection refused" in str(caught.value) or "Failed to" in str(caught.value) or "refused" in str(
        caught.value).lower()


def test_histogram_rows_keep_bucket_arrays(store):
    b = pb.Batch(project="contract", run_id="hist", stream_id="hist.s", seq=1)
    b.histograms.append(pb.Histogram(key="grad/w", step=5, ts_us=1_700_000_000_000_000, count=3, sum=1.5,
                                     min=0.0, max=1.0, nonfinite=1, bucket_edges=[0.0, 0.5, 1.0],
                                     bucket_counts=[1, 2]))
    store.insert("histograms", decode(b).tables["histograms"])
    rows = store.query_rows("SELECT bucket_edges, bucket_counts, nonfinite FROM histograms FINAL "
                            "WHERE run_id = 'hist'")
    assert [(list(e), list(c), n) for e, c, n in rows] == [([0.0, 0.5, 1.0], [1, 2], 1)]


def test_insert_of_a_wrong_shape_fails_loudly(store):
    with pytest.raises(Exception):
        store.insert("metrics", pa.table({"nonexistent_column": [1]}))
