"""The GPU paths on a real GPU: watch() on CUDA and the NVML sampler, against a real ingest. One JSON line.

Checks, each measured:
- `tensor_stats` on a CUDA tensor (with NaN and Inf in it) bins exactly as
  `torch.histc` on its finite values, and `group_stats` of many small tensors
  exactly as `tensor_stats` of each, also in deterministic mode, and neither
  queues a host synchronisation (`torch.cuda.set_sync_debug_mode("error")`);
- the NVML sampler sees the GPUs and reads its series;
- a small CNN trained on the GPU with `watch(log="all")` and the system monitor
  on (every 0.5 s): the GPU series and histogram rows the ingest stored, and the
  training-loop overhead of watch() at log_freq=100.

    python -m bench.gpu_check [--device cuda] [--segments 8] [--segment-steps 500]

`--device cpu` runs the same script where there is no GPU (the GPU figures are then empty).

A GPU machine that cannot hold the whole install (chDB alone is a 180 MB wheel) runs it in two
halves: there, with torch, grpcio, protobuf, psutil and nvidia-ml-py alone, the run goes to disk in
offline mode; here, `pulse sync` uploads it to a real ingest and the stored figures are added:

    python -m bench.gpu_check --offline DIR     # on the GPU machine
    python -m bench.gpu_check --upload DIR      # where the ingest runs; prints the JSON line
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch

FIGURES = "gpu_check.json"


def stats_checks(device: str) -> dict:
    """tensor_stats (one large tensor) and group_stats (many small ones) against torch, on the device."""
    from emitter.tensor_stats import BINS, HEAD, flatten, group_stats, tensor_stats

    torch.manual_seed(0)
    x = torch.randn(1_000_003, device=device) * 3
    x[::100_000] = float("nan")
    x[7], x[11] = float("inf"), -float("inf")
    finite = x[torch.isfinite(x)]
    reference = [int(c) for c in torch.histc(finite, BINS).tolist()]
    small = [torch.randn(n, device=device) * (i + 1) for i, n in enumerate((10, 1000, 4096, 65_536, 300_000))]
    small[1][3], small[2][5] = float("nan"), float("inf")
    small.append(torch.full((7,), 2.5, device=device))
    flats = [flatten(t) for t in small]

    def group_exact() -> bool:
        """Buckets, count of non-finite values, min, max and edges bit for bit; sum (in double) and norm close."""
        for t, row, alone in zip(small, group_stats(flats).tolist(), [tensor_stats(t).tolist() for t in small]):
            if row[HEAD:] != alone[HEAD:] or [row[i] for i in (0, 2, 3, 5, 6)] != [alone[i] for i in (0, 2, 3, 5, 6)]:
                return False
            values = t[torch.isfinite(t)].double()
            if abs(row[1] - values.sum().item()) > 1e-9 * (1 + values.abs().sum().item()):
                return False
            if not (row[4] == alone[4] or abs(row[4] - alone[4]) <= 1e-5 * alone[4]
                    or math.isnan(row[4]) and math.isnan(alone[4])):
                return False
        return True

    result = {"histc_exact": [int(c) for c in tensor_stats(x).tolist()[HEAD:]] == reference,
              "group_exact": group_exact()}
    if x.is_cuda:
        torch.cuda.synchronize()
        for name, compute in (("stats_sync_free", lambda: tensor_stats(x)),
                              ("group_sync_free", lambda: group_stats(flats))):
            torch.cuda.set_sync_debug_mode("error")
            try:
                compute()
                result[name] = True
            except RuntimeError as exc:
                result[name] = f"{exc}"[:200]
            finally:
                torch.cuda.set_sync_debug_mode(0)
        torch.use_deterministic_algorithms(True)
        try:
            result["deterministic_exact"] = [int(c) for c in tensor_stats(x).tolist()[HEAD:]] == reference
            result["group_deterministic_exact"] = group_exact()
        except RuntimeError as exc:
            result["group_deterministic_exact"] = f"{exc}"[:200]
        finally:
            torch.use_deterministic_algorithms(False)
    return result


def nvml_check() -> dict:
    from emitter.system import GpuSampler

    sampler = GpuSampler.open("auto")
    if sampler is None:
        return {"nvml_gpus": 0, "nvml_keys": []}
    samples = sampler.sample()
    sampler.close()
    out = {"nvml_gpus": len(sampler.devices), "nvml_keys": sorted({key for key, _, _ in samples})}
    # NVML's per-process figure against what this process's allocator holds (it must be at least that)
    own = [value for key, device, value in samples if key == "gpu.proc_mem_mb" and device == "gpu0"]
    if own and torch.cuda.is_initialized():
        out["nvml_proc_mem_mb"] = round(own[0], 1)
        out["torch_reserved_mb"] = round(torch.cuda.memory_reserved() / 2**20, 1)
    return out


def train_watched(args: argparse.Namespace) -> tuple[dict, int]:
    """Train the small CNN on the current settings' run; return the run's figures and its expected histogram rows."""
    import emitter
    from bench.watch_overhead import SmallCNN, measure, train_steps

    run = emitter.init(project="gpu-check")
    model = SmallCNN().to(args.device)
    emitter.watch(model, log="all", log_freq=10, log_graph=True)
    data = (torch.randn(32, 3, 32, 32, device=args.device), torch.randint(0, 10, (32,), device=args.device))
    train_steps(model, torch.optim.SGD(model.parameters(), lr=0.01), data, 100, emitter.log)
    emitter.unwatch(model)
    out = measure(emitter, model, args.device, args.segments, args.segment_steps, log_freq=100)
    # Gradient health on the device: NaN in one weight's gradient for 3 steps is flagged, once
    poison = model.fc2.weight.register_hook(lambda g: g.index_fill(0, torch.tensor([0], device=g.device), math.nan))
    emitter.watch(model, log="gradients", log_freq=1)
    for _ in range(3):  # backward only: a step would spread the NaN to every weight
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(data[0]), data[1]).backward()
        emitter.log({"poisoned": 1.0})
    emitter.unwatch(model)
    poison.remove()
    out["run_id"] = run.id
    emitter.finish()  # the sender checks gradient health: the summary is complete after finish()
    out["watch_errors"] = run.summary.get("_pulse/watch_errors", 0)
    out["gradient_health"] = {kind: flags for kind, flags in run.summary.get("gradient_health", {}).items() if flags}
    params = len(list(model.parameters()))
    # gradients and parameters: 100 steps at log_freq 10, the watched segments at log_freq 100; then
    # gradients only for the 3 poisoned steps
    return out, 2 * params * (100 // 10 + args.segments * (args.segment_steps // 100)) + 3 * params


def stored(address: str, run_id: str, expected_rows: int) -> dict:
    """What the ingest stored of the run: GPU series, histogram rows, the model graph."""
    from pulse.client import QueryClient

    client = QueryClient(address, api_key="")

    def query(sql: str) -> list[dict]:
        return client.query(sql, {"r": run_id}).to_pylist()

    try:
        return {
            "gpu_keys": sorted({r["key"] for r in query(
                "SELECT DISTINCT key FROM system_metrics WHERE run_id = {r:String} AND startsWith(device, 'gpu')")}),
            "gpu_devices": sorted({r["device"] for r in query(
                "SELECT DISTINCT device FROM system_metrics WHERE run_id = {r:String} AND device != ''")}),
            "histogram_rows": query("SELECT count() AS n FROM histograms WHERE run_id = {r:String}")[0]["n"],
            "histogram_rows_expected": expected_rows,
            "graph_stored": bool(query("SELECT graph FROM model_graphs WHERE run_id = {r:String}")),
            "health_alerts": sorted(r["title"] for r in query(
                "SELECT level || ' ' || title AS title FROM alerts WHERE run_id = {r:String}")),
        }
    finally:
        client.close()


def gpu_figures(args: argparse.Namespace) -> dict:
    out: dict = {"device": args.device, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print(json.dumps({**out, "error": "CUDA is not available here"}))
            sys.exit(1)
        out["gpu_name"] = torch.cuda.get_device_name()
    out.update(stats_checks(args.device))
    out.update(nvml_check())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--segments", type=int, default=8, help="pairs of plain and watched segments")
    parser.add_argument("--segment-steps", type=int, default=500)
    half = parser.add_mutually_exclusive_group()
    half.add_argument("--offline", type=Path, metavar="DIR",
                      help="run offline, saving the run and the figures in DIR (no ingest needed)")
    half.add_argument("--upload", type=Path, metavar="DIR",
                      help="sync an --offline DIR into a fresh ingest and add what it stored")
    args = parser.parse_args()
    os.environ["PULSE_SYSTEM_INTERVAL"] = "0.5"

    if args.upload:
        from bench.harness import ingest_process
        from emitter.sync import sync

        out = json.loads((args.upload / FIGURES).read_text())
        with ingest_process() as (address, _):
            results = sync(args.upload, server=address)
            out["synced_batches"] = sum(r.batches for r in results)
            out["sync_errors"] = [r.reason for r in results if not r.uploaded]
            out.update(stored(address, out["run_id"], out.pop("histogram_rows_expected")))
    elif args.offline:
        os.environ.update(PULSE_MODE="offline", PULSE_DIR=str(args.offline))
        out = gpu_figures(args)
        figures, expected = train_watched(args)
        out.update(figures, histogram_rows_expected=expected)
        (args.offline / FIGURES).write_text(json.dumps(out))
    else:
        from bench.harness import ingest_process

        out = gpu_figures(args)
        with ingest_process() as (address, _):
            os.environ["PULSE_SERVER"] = address
            figures, expected = train_watched(args)
            out.update(figures)
            out.update(stored(address, figures["run_id"], expected))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
