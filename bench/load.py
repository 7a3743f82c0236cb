"""Many emitter processes against one ingest: throughput, ack latency, loss, duplicates, ingest memory.

Each of `--emitters` processes logs steps of `--keys` scalars for
`--seconds`, paced at `--rate` scalars per second (the sustained load the
pipeline must keep up with), then finishes; throughput is points stored over
the time until the last one is stored. Afterwards every run is
counted in ClickHouse: `lost` is logged minus stored, `duplicated` is stored
(with FINAL) minus logged when positive, `retried_rows` how many extra rows
retries wrote before merges collapsed them. `ack_p99_ms` pools every
emitter's batch send-to-ack latencies.

    python -m bench.load [--emitters 20] [--seconds 30] [--keys 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench.harness import ingest_process, peak_rss_mb, percentile


def worker(seconds: float, keys: int, rate: float, project: str) -> None:
    import emitter

    names = [f"layer_{i}/grad_norm" for i in range(keys)]
    run = emitter.init(project=project)
    print(json.dumps({"run_id": run.id}), flush=True)
    sys.stdin.readline()  # start together
    start = time.monotonic()
    total = int(seconds * rate / keys)
    step_s = keys / rate
    for step in range(total):
        while time.monotonic() < start + step * step_s:
            time.sleep(0.001)
        run.log(dict.fromkeys(names, step * 0.5))
    steps = total
    run.finish()
    print(json.dumps({"points": steps * keys, "ack_ms": list(run.transport.ack_latencies_ms)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emitters", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20_000, help="scalars per second per emitter")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--project", default="bench-load")
    args = parser.parse_args()
    if args.worker:
        return worker(args.seconds, args.keys, args.rate, args.project)

    with ingest_process() as (address, ingest):
        from pulse.client import QueryClient

        env = {**os.environ, "PULSE_SERVER": address, "PULSE_FINISH_TIMEOUT": "600"}
        command = [sys.executable, "-m", "bench.load", "--worker", "--seconds", str(args.seconds),
                   "--keys", str(args.keys), "--rate", str(args.rate)]
        workers = [subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                   for _ in range(args.emitters)]
        run_ids = [json.loads(w.stdout.readline())["run_id"] for w in workers]
        start = time.perf_counter()
        for w in workers:
            w.stdin.write("go\n")
            w.stdin.flush()
        reports = [json.loads(w.communicate(timeout=args.seconds + 900)[0].splitlines()[-1]) for w in workers]
        logged = sum(r["points"] for r in reports)
        client = QueryClient(address)
        stored = raw = 0
        while True:  # finish() returned, so every point is acknowledged, i.e. committed
            rows = client.query("SELECT count() AS n FROM metrics FINAL WHERE run_id IN {ids:Array(String)}",
                                {"ids": run_ids}, timeout=300).to_pylist()
            stored = rows[0]["n"]
            if stored >= logged or time.perf_counter() - start > args.seconds + 900:
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - start
        raw = client.query("SELECT count() AS n FROM metrics WHERE run_id IN {ids:Array(String)}",
                           {"ids": run_ids}, timeout=300).to_pylist()[0]["n"]
        rss = peak_rss_mb(ingest.pid)
        client.close()

    acks = sorted(ms for r in reports for ms in r["ack_ms"])
    print(json.dumps({
        "emitters": args.emitters,
        "seconds": round(elapsed, 1),
        "scalars_per_s": round(stored / elapsed),
        "ack_p99_ms": round(percentile(acks, 0.99), 1),
        "lost": max(0, logged - stored),
        "duplicated": max(0, stored - logged),
        "ingest_peak_rss_mb": round(rss, 1),
        "points_logged": logged,
        "retried_rows": raw - stored,
        "ack_p50_ms": round(percentile(acks, 0.50), 1),
        "offered_scalars_per_s": args.emitters * args.rate,
    }))


if __name__ == "__main__":
    main()
