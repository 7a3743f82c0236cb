"""One emitter streaming scalars into a real ingest with chDB on loopback, end to end.

The emitter logs `--steps` steps of `--keys` scalars, paced at `--rate`
scalars per second (0: as fast as the loop goes, which measures how deep the
queues get rather than a sustained rate); throughput is points stored (counted in ClickHouse with FINAL) over the time
from the first `log()` to the moment the last point is queryable. Meanwhile a
probe key is logged every 50 ms and a poller records when each probe becomes
visible through the Query RPC: that is the log-to-queryable latency.

    python -m bench.pipeline_throughput [--steps 20000] [--keys 100]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

from bench.harness import cpu_seconds, ingest_process, peak_rss_mb, percentile


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--rate", type=float, default=800_000)
    args = parser.parse_args()
    step_s = args.keys / args.rate if args.rate else 0.0
    keys = [f"layer_{i}/value" for i in range(args.keys)]

    with ingest_process() as (address, ingest):
        os.environ["PULSE_SERVER"] = address
        import emitter
        from pulse.client import QueryClient

        client = QueryClient(address)
        run = emitter.init(project="bench-throughput")
        probes: dict[int, float] = {}
        seen: dict[int, float] = {}
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                rows = client.query("SELECT max(step) AS s FROM metrics WHERE run_id = {r:String} "
                                    "AND key = 'probe'", {"r": run.id}).to_pylist()
                now = time.perf_counter()
                latest = rows[0]["s"] if rows and rows[0]["s"] is not None else -1
                for step in [s for s in probes if s <= latest and s not in seen]:
                    seen[step] = now
                time.sleep(0.05)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        ingest_cpu0, emitter_cpu0 = cpu_seconds(ingest.pid), time.process_time()
        start = time.perf_counter()
        next_probe = start
        sent = 0
        for step in range(args.steps):
            row = dict.fromkeys(keys, step * 0.5)
            now = time.perf_counter()
            while now < start + step * step_s:  # pacing: the next step is not due yet
                time.sleep(0.0005)
                now = time.perf_counter()
            if now >= next_probe:
                row["probe"] = 1.0
                probes[step] = now
                next_probe = now + 0.05
            run.log(row)
            sent += len(row)
        run.finish()
        stored = 0
        while stored < sent and time.perf_counter() - start < 600:
            stored = client.query("SELECT count() AS n FROM metrics FINAL WHERE run_id = {r:String}",
                                  {"r": run.id}).to_pylist()[0]["n"]
        elapsed = time.perf_counter() - start
        ingest_cpu = cpu_seconds(ingest.pid) - ingest_cpu0
        emitter_cpu = time.process_time() - emitter_cpu0
        deadline = time.perf_counter() + 5
        while len(seen) < len(probes) and time.perf_counter() < deadline:
            time.sleep(0.05)
        done.set()
        poller.join(5)
        rss = peak_rss_mb(ingest.pid)
        client.close()

    latencies = sorted((seen[s] - probes[s]) * 1000 for s in seen)
    print(json.dumps({
        "scalars_per_s": round(stored / elapsed),
        "points_sent": sent,
        "points_stored": stored,
        "e2e_latency_p50_ms": round(percentile(latencies, 0.50), 1),
        "e2e_latency_p99_ms": round(percentile(latencies, 0.99), 1),
        "ingest_rss_mb": round(rss, 1),
        "seconds": round(elapsed, 2),
        "probes": len(probes),
        "target_rate": args.rate,
        "emitter_cpu_us_per_scalar": round(emitter_cpu / sent * 1e6, 3),
        "ingest_cpu_us_per_scalar": round(ingest_cpu / sent * 1e6, 3),
    }))


if __name__ == "__main__":
    main()
