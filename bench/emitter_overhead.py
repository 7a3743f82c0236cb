"""Caller-side cost of `log()` with a 10-scalar dict, while the sender streams to a real ingest.

The loop stands for a training loop: each step does `--work-us` of work that
releases the GIL (as a torch forward/backward does), then logs 10 scalars.
Printed: p50 and p99 of the `log()` call itself; the floor (copying the dict
and appending to a deque, the least any in-process logger does) measured the
same way in the same run; and the emitter's whole CPU time per step (caller
plus sender threads, through `finish()`), with the loop's own work
subtracted.

    python -m bench.emitter_overhead [--steps 100000] [--work-us 50]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from array import array
from collections import deque

from bench.harness import ingest_process, percentile

KEYS = [f"train/metric_{i}" for i in range(10)]


def work_buffer(work_us: float) -> bytes:
    """A buffer whose sha256 takes about `work_us` (hashlib releases the GIL on large inputs)."""
    size = 1 << 16
    data = os.urandom(size)
    start = time.perf_counter()
    for _ in range(200):
        hashlib.sha256(data).digest()
    per_byte = (time.perf_counter() - start) / (200 * size)
    return os.urandom(max(4096, int(work_us * 1e-6 / per_byte)))


def loop(steps: int, work: bytes, call, durations: array) -> None:
    clock = time.perf_counter_ns
    for step in range(steps):
        hashlib.sha256(work).digest()
        row = {key: step * 0.001 + i for i, key in enumerate(KEYS)}
        t0 = clock()
        call(row)
        durations.append(clock() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--work-us", type=float, default=50.0)
    args = parser.parse_args()
    work = work_buffer(args.work_us)

    with ingest_process() as (address, _):
        os.environ["PULSE_SERVER"] = address
        import emitter

        # The floor, and the loop's own CPU without any logging.
        floor_queue: deque = deque()
        floor = array("q")
        cpu0 = time.process_time()
        loop(args.steps, work, lambda row: floor_queue.append((0, 0, row.copy())), floor)
        baseline_cpu = time.process_time() - cpu0
        floor_queue.clear()

        run = emitter.init(project="bench-overhead", config={"steps": args.steps})
        durations = array("q")
        cpu0 = time.process_time()
        loop(args.steps, work, run.log, durations)
        run.finish()
        emitter_cpu = time.process_time() - cpu0 - baseline_cpu
        stats = run.stats()

    ordered = sorted(durations)
    floor_sorted = sorted(floor)
    print(json.dumps({
        "p50_us": round(percentile(ordered, 0.50) / 1000, 3),
        "p99_us": round(percentile(ordered, 0.99) / 1000, 3),
        "floor_p50_us": round(percentile(floor_sorted, 0.50) / 1000, 3),
        "cpu_us_per_step": round(emitter_cpu / args.steps * 1e6, 2),
        "calls": args.steps,
        "work_us_per_step": args.work_us,
        "batches": stats["batches"],
        "pending_after_finish": stats["pending_batches"],
    }))


if __name__ == "__main__":
    main()
