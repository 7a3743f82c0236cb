"""Training-loop cost of `watch(log="all", log_freq=100)`: a small CNN, every step logged, real ingest.

Plain and watched segments alternate in one run, in pairs (watch() before a
watched segment, unwatch() after; which goes first alternates), each a whole
number of `log_freq` steps. A pair sees the same machine state, so the
overhead is the median over pairs of the pair's slowdown; on a shared machine
that is what stays steady. Printed: median steps/s of each, that overhead in
percent, the same from the training thread's CPU time (`cpu_overhead_pct`:
what the hooks and the on-device statistics cost the training thread, blind
to other processes), the training thread's cost of one logging pass's
statistics measured alone (`stats_ms_per_logging_pass`, the steady part of the
overhead), and the histogram rows the ingest stored (proof the watched
segments logged). torch runs on `--threads`
(default 1): on a small machine the sender thread and the ingest need a core,
and torch's spinning OpenMP workers on a shared core make every figure noise.

    python -m bench.watch_overhead [--segments 10] [--segment-steps 200] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch
from torch import nn

from bench.harness import ingest_process


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(32 * 8 * 8, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


def train_steps(model: nn.Module, optimizer, data, steps: int, log) -> tuple[float, float]:
    """Run `steps` training steps, logging every one; return (seconds, training thread's CPU seconds)."""
    x, y = data
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    sync()
    start, cpu = time.perf_counter(), time.thread_time()
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        log({"loss": loss.detach()})
    sync()
    return time.perf_counter() - start, time.thread_time() - cpu


def measure(emitter, model: nn.Module, device: str, segments: int, segment_steps: int, log_freq: int,
            batch: int = 32) -> dict:
    """Pairs of plain and watched segments on the current run (see the module docstring)."""
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    data = (torch.randn(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device))
    train_steps(model, optimizer, data, log_freq, emitter.log)  # warm-up
    plain, watched = [], []
    for pair in range(segments):
        for watching in ((False, True) if pair % 2 == 0 else (True, False)):
            if watching:
                emitter.watch(model, log="all", log_freq=log_freq)
            (watched if watching else plain).append(train_steps(model, optimizer, data, segment_steps,
                                                                emitter.log))
            emitter.unwatch(model)
    stats_ms = logging_pass_ms(model)
    rate = statistics.median(segment_steps / s for s, _ in plain), statistics.median(
        segment_steps / s for s, _ in watched)
    return {"steps_per_s_plain": round(rate[0], 2), "steps_per_s_watched": round(rate[1], 2),
            "overhead_pct": round(statistics.median((w[0] - p[0]) / p[0] * 100 for p, w in zip(plain, watched)), 2),
            "cpu_overhead_pct": round(statistics.median((w[1] - p[1]) / p[1] * 100
                                                        for p, w in zip(plain, watched)), 2),
            "stats_ms_per_logging_pass": round(stats_ms, 3), "log_freq": log_freq}


def logging_pass_ms(model: nn.Module, repeat: int = 20) -> float:
    """Milliseconds to compute one logging pass's statistics (gradients and parameters), as the hooks do:
    small tensors together, large ones alone."""
    from emitter.tensor_stats import flatten, group_stats, small_limit, tensor_stats

    tensors = [t for p in model.parameters() if p.grad is not None for t in (p.grad, p.detach())]
    limit = small_limit(tensors[0].device)
    small = [flatten(t) for t in tensors if t.numel() <= limit]
    sync = torch.cuda.synchronize if tensors[0].is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        if small:
            group_stats(small)
        for t in tensors:
            if t.numel() > limit:
                tensor_stats(t)
    sync()
    return (time.perf_counter() - start) / repeat * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--segments", type=int, default=10, help="pairs of plain and watched segments")
    parser.add_argument("--segment-steps", type=int, default=200)
    parser.add_argument("--log-freq", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with ingest_process() as (address, _):
        os.environ["PULSE_SERVER"] = address
        import emitter
        from pulse.client import QueryClient

        run = emitter.init(project="bench-watch")
        result = measure(emitter, SmallCNN().to(args.device), args.device, args.segments, args.segment_steps,
                         args.log_freq)
        emitter.finish()
        client = QueryClient(address, api_key="")
        rows = client.query("SELECT count() AS n FROM histograms WHERE run_id = {r:String}",
                            {"r": run.id}).to_pylist()[0]["n"]
        client.close()
    print(json.dumps({**result, "segments": args.segments, "segment_steps": args.segment_steps,
                      "histogram_rows": rows, "device": args.device, "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
