"""The dashboard's queries at size, against a real ingest (embedded chDB, read through the Query RPC).

Writes 8 runs x 1,000,000 points of one key and 10,000 more runs (config and summary each) through
the real wire, then times, with the dashboard's own `dashboard.data.Source` and no cache:

- the chart query the Charts page issues for those 8 runs (`Source.series`, downsampled in
  ClickHouse to the page's bucket count), and how many points it returns per run;
- the runs-table query of the Runs page over the 10,000-run project (one page of 50, sorted,
  with config and summary columns), and every query that page issues on a load
  (`runs_page_10k_runs_ms_p50`); then again once one more run with a 20,000-key summary is in the
  project (`runs_page_wide_run_ms_p50`). Target: 1,000 ms each.

The chart query reads `metrics` grouped by 256-step chunks, which ClickHouse answers from the
aggregate projection `step_chunks` (migration 0040). Both are measured: first on the schema as
the migrations make it, then after the ingest is stopped, the projection dropped from the same
store and the ingest started again (`chart_query_ms_p50_without_projection`).

    python -m bench.dashboard_queries [--runs 8] [--points 1000000] [--table-runs 10000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np

from bench.harness import NO_SQL_PORT, free_port, percentile
from dashboard.data import RunFilter, RunSort, Source
from dashboard.runs_table import important_keys
from pulse.v1 import telemetry_pb2 as pb

WIDE_KEYS = 20_000
CHART_BUCKETS = 700  # what the Charts page asks for at two charts per row (dashboard/views/charts.py)
PAGE_SIZE = 50
POINTS_PER_BATCH = 250_000
START_US = 1_700_000_000_000_000
# What the dashboard's chunked series query is shaped for (see SERIES_CHUNKED in dashboard/queries.py).
DROP_PROJECTION = "ALTER TABLE metrics DROP PROJECTION IF EXISTS step_chunks"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--table-runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        data = Path(tmp) / "data"
        run_ids = [f"bench-run-{i}" for i in range(args.runs)]
        with _ingest(data) as address:
            started = time.perf_counter()
            for run_id in run_ids:
                _send(address, _series_batches("bench-chart", run_id, args.points))
            _send_runs(address, _table_batches("bench-table", 0, args.table_runs))
            write_s = time.perf_counter() - started
            source = Source(server=address, clickhouse_url="")
            _wait_for(lambda: sum(source.series("bench-chart", run_ids, "loss", 1).column("points").to_pylist())
                      == args.runs * args.points)
            _wait_for(lambda: sum(source.states("bench-table").column("runs").to_pylist()) == args.table_runs)
            chart = _time(lambda: source.series("bench-chart", run_ids, ["loss"], CHART_BUCKETS), args.repeat)
            table = source.series("bench-chart", run_ids, ["loss"], CHART_BUCKETS).to_pandas()
            runs = _runs_page_timings(source, args.repeat)
            _send(address, iter([_wide_run("bench-table", WIDE_KEYS)]))
            _wait_for(lambda: sum(source.states("bench-table").column("runs").to_pylist()) == args.table_runs + 1)
            wide = _time(lambda: _runs_page_load(source, "bench-table"), max(5, args.repeat // 3))
        _drop_projection(data)
        with _ingest(data) as address:
            source = Source(server=address, clickhouse_url="")
            plain = _time(lambda: source.series("bench-chart", run_ids, ["loss"], CHART_BUCKETS), args.repeat)
    per_run = table.groupby("run_id").size()
    spikes_kept = int((table["max"] == 1e9).sum())
    page, rows_on_page, total, whole, filtered = runs
    print(json.dumps({
        "chart_query_ms_p50": round(statistics.median(chart), 1),
        "chart_query_ms_p90": round(percentile(sorted(chart), 0.9), 1),
        "chart_query_ms_p50_without_projection": round(statistics.median(plain), 1),
        "runs": args.runs,
        "points_per_run": args.points,
        "max_points_returned_per_run": int(per_run.max()),
        "spikes_kept": f"{spikes_kept}/{args.runs}",
        "runs_table_ms_p50": round(statistics.median(page), 1),
        "runs_table_ms_p90": round(percentile(sorted(page), 0.9), 1),
        "runs_in_table": total,
        "runs_table_page_rows": rows_on_page,
        "runs_table_filtered_ms_p50": round(statistics.median(filtered), 1),
        "runs_page_all_queries_ms_p50": round(statistics.median(whole), 1),
        "runs_page_10k_runs_ms_p50": round(statistics.median(whole), 1),
        "runs_page_wide_run_ms_p50": round(statistics.median(wide), 1),
        "wide_run_keys": WIDE_KEYS,
        "write_s": round(write_s, 1),
        "points_in_chart": int(table["points"].sum()),
        "backend": "chdb via the Query RPC",
    }))


def _runs_page_timings(source: Source, repeat: int) -> tuple:
    config_keys = source.run_keys("bench-table", "config").column("key").to_pylist()[:5]
    summary_keys = source.run_keys("bench-table", "summary").column("key").to_pylist()[:6]
    sort = RunSort("summary", "val_loss", descending=False)

    def runs_table():
        return source.runs_page("bench-table", RunFilter(), sort, PAGE_SIZE, 0, config_keys, summary_keys)

    page = _time(runs_table, repeat)
    first = runs_table()
    whole = _time(lambda: _runs_page_load(source, "bench-table"), max(5, repeat // 3))
    where = RunFilter(text="run-99", key="lr", op=">", value="0.01")
    filtered = _time(lambda: source.runs_page("bench-table", where, sort, PAGE_SIZE, 0, config_keys, summary_keys),
                     repeat)
    return page, first.num_rows, first.column("total")[0].as_py(), whole, filtered


def _runs_page_load(source: Source, project: str) -> None:
    """Every query a Runs page load issues (dashboard/views/runs.py), uncached, in its order."""
    source.states(project, False)
    config_keys = source.run_keys(project, "config").to_pandas()
    summary_keys = source.run_keys(project, "summary").to_pandas()
    source.tags(project)
    definitions = source.metric_definitions(project)
    sort = RunSort()
    source.runs_page(project, RunFilter(), sort, PAGE_SIZE, 0)  # the probe: is anything on the page live?
    config = [k for k, t in zip(config_keys["key"], config_keys["type"]) if t in ("Int64", "Double", "String")][:5]
    summary = important_keys(summary_keys, definitions)[:6]
    source.runs_page(project, RunFilter(), sort, PAGE_SIZE, 0, config, summary)


def _wide_run(project: str, keys: int) -> pb.Batch:
    """One run whose summary holds `keys` keys (a 20,000-key log() dict, as the issue's user logged)."""
    summary = {f"probe/{k:05d}": float(k) for k in range(keys)} | {"val_loss": 0.5}
    batch = pb.Batch(project=project, run_id="wide-run", stream_id="wide-run.bench", seq=1)
    batch.events.append(pb.Event(start=pb.RunStart(name="wide-run", created_at_us=START_US + 10**12,
                                                   config_json=json.dumps({"probes": keys}))))
    batch.events.append(pb.Event(summary=pb.SummaryUpdate(summary_json=json.dumps(summary))))
    batch.events.append(pb.Event(finish=pb.RunFinish(state="finished")))
    return batch


@contextmanager
def _ingest(data: Path):
    """`pulse ingest` on `data` until the block ends."""
    port = free_port()
    log = open(data.parent / "ingest.log", "a")
    process = subprocess.Popen([sys.executable, "-m", "pulse.cli", "ingest", "--data", str(data), "--port", str(port),
                                *NO_SQL_PORT], stdout=log, stderr=subprocess.STDOUT)
    try:
        os.environ["PULSE_DIR"] = str(data.parent / "pulse")
        _wait_for(lambda: _listening(port) or process.poll() is not None, timeout=60)
        if process.poll() is not None:
            raise RuntimeError(f"ingest did not start: {(data.parent / 'ingest.log').read_text()[-2000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
        log.close()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _drop_projection(data: Path) -> None:
    from ingest.storage import ClickHouseStore

    store = ClickHouseStore(f"chdb://{data}")
    try:
        store.command(DROP_PROJECTION)
    finally:
        store.close()


def _series_batches(project: str, run_id: str, points: int) -> Iterator[pb.Batch]:
    """One key of `points` steps, with a single spike the chart query must keep."""
    rng = np.random.default_rng(abs(hash(run_id)) % 2**32)
    steps = np.arange(points, dtype=np.int64)
    values = 1.0 / (1.0 + steps / 1000.0) + 0.01 * rng.random(points)
    values[points // 3] = 1e9
    seq = 0
    for first in range(0, points, POINTS_PER_BATCH):
        seq += 1
        batch = pb.Batch(project=project, run_id=run_id, stream_id=f"{run_id}.bench", seq=seq)
        if first == 0:
            batch.events.append(pb.Event(start=pb.RunStart(name=run_id, created_at_us=START_US)))
        chunk = slice(first, min(points, first + POINTS_PER_BATCH))
        block = batch.scalars
        block.keys.append("loss")
        block.key_index.extend(np.zeros(chunk.stop - chunk.start, dtype=np.uint32).tolist())
        block.step.extend(steps[chunk].tolist())
        block.ts_us.extend((START_US + steps[chunk] * 10_000).tolist())
        block.value.extend(values[chunk].tolist())
        yield batch
    seq += 1
    finish = pb.Batch(project=project, run_id=run_id, stream_id=f"{run_id}.bench", seq=seq)
    finish.events.append(pb.Event(finish=pb.RunFinish(state="finished")))
    yield finish


def _table_batches(project: str, first: int, last: int) -> Iterator[pb.Batch]:
    """Finished runs with a config and a summary each, as a sweep-heavy project has."""
    rng = np.random.default_rng(first)
    states = ["finished"] * 8 + ["failed", "killed"]
    for i in range(first, last):
        run_id = f"run-{i:05d}"
        config = {"lr": float(10 ** rng.uniform(-4, 0)), "batch_size": int(rng.choice([32, 64, 128])),
                  "optimizer": str(rng.choice(["adam", "sgd"])), "dropout": float(rng.uniform(0, 0.5)),
                  "layers": [64, 32], "seed": i}
        summary = {"val_loss": float(rng.random()), "val_acc": float(rng.random()), "train/loss": float(rng.random()),
                   "epoch": 10, "_step": 1000}
        batch = pb.Batch(project=project, run_id=run_id, stream_id=f"{run_id}.bench", seq=1)
        batch.events.append(pb.Event(start=pb.RunStart(name=f"{project}-{run_id}",
                                                       created_at_us=START_US + i * 1_000_000,
                                                       config_json=json.dumps(config), tags=[f"t{i % 7}"])))
        batch.events.append(pb.Event(summary=pb.SummaryUpdate(summary_json=json.dumps(summary))))
        batch.events.append(pb.Event(finish=pb.RunFinish(state=states[i % len(states)])))
        yield batch


def _send(address: str, batches: Iterator[pb.Batch]) -> None:
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=pb.Batch.SerializeToString,
                                     response_deserializer=pb.Ack.FromString)
        for ack in call(batches, timeout=600):
            if ack.rejected:
                raise RuntimeError(f"the ingest rejected records: {list(ack.rejected)[:3]}")


def _send_runs(address: str, batches: Iterator[pb.Batch], streams: int = 128) -> None:
    """One stream per run (the ingest's rule: a stream writes one run), many at once: each waits for
    its commit, and one flush commits them all."""
    from concurrent.futures import ThreadPoolExecutor

    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        call = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=pb.Batch.SerializeToString,
                                     response_deserializer=pb.Ack.FromString)

        def send(batch: pb.Batch) -> None:
            for ack in call(iter([batch]), timeout=600):
                if ack.rejected:
                    raise RuntimeError(f"the ingest rejected records: {list(ack.rejected)[:3]}")

        with ThreadPoolExecutor(streams) as pool:
            list(pool.map(send, batches))


def _time(query: Callable[[], object], repeat: int) -> list[float]:
    query()  # the first run also has the ingest check the statement once
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        query()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the written data did not become queryable")
        time.sleep(0.2)


if __name__ == "__main__":
    main()
