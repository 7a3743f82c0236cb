"""The GPU paths on a real GPU: watch() on CUDA and the NVML sampler, against a real ingest. One JSON line.

Checks, each measured:
- `tensor_stats` on a CUDA tensor (with NaN and Inf in it) bins exactly as
  `torch.histc` on its finite values, also in deterministic mode, and queues
  no host synchronisation (`torch.cuda.set_sync_debug_mode("error")`);
- the NVML sampler sees the GPUs and reads its series;
- a small CNN trained on the GPU with `watch(log="all")` and the system monitor
  on (every 0.5 s): the GPU series and histogram rows the ingest stored, and the
  training-loop overhead of watch() at log_freq=100.

    python -m bench.gpu_check [--device cuda] [--segments 3] [--segment-steps 300]

`--device cpu` runs the same script where there is no GPU (the GPU figures are then empty).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch


def stats_checks(device: str) -> dict:
    from emitter.torch_hooks import BINS, HEAD, tensor_stats

    torch.manual_seed(0)
    x = torch.randn(1_000_003, device=device) * 3
    x[::100_000] = float("nan")
    x[7], x[11] = float("inf"), -float("inf")
    finite = x[torch.isfinite(x)]
    reference = [int(c) for c in torch.histc(finite, BINS).tolist()]
    result = {"histc_exact": [int(c) for c in tensor_stats(x).tolist()[HEAD:]] == reference}
    if x.is_cuda:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            tensor_stats(x)
            result["stats_sync_free"] = True
        except RuntimeError as exc:
            result["stats_sync_free"] = f"{exc}"[:200]
        finally:
            torch.cuda.set_sync_debug_mode(0)
        torch.use_deterministic_algorithms(True)
        try:
            result["deterministic_exact"] = [int(c) for c in tensor_stats(x).tolist()[HEAD:]] == reference
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
    return {"nvml_gpus": len(sampler.devices), "nvml_keys": sorted({key for key, _, _ in samples})}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--segment-steps", type=int, default=300)
    args = parser.parse_args()
    out: dict = {"device": args.device, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            print(json.dumps({**out, "error": "CUDA is not available here"}))
            sys.exit(1)
        out["gpu_name"] = torch.cuda.get_device_name()
    out.update(stats_checks(args.device))
    out.update(nvml_check())

    from bench.harness import ingest_process
    from bench.watch_overhead import SmallCNN, measure, train_steps

    os.environ["PULSE_SYSTEM_INTERVAL"] = "0.5"
    with ingest_process() as (address, _):
        os.environ["PULSE_SERVER"] = address
        import emitter
        from pulse.client import QueryClient

        run = emitter.init(project="gpu-check")
        model = SmallCNN().to(args.device)
        emitter.watch(model, log="all", log_freq=10, log_graph=True)
        data = (torch.randn(32, 3, 32, 32, device=args.device), torch.randint(0, 10, (32,), device=args.device))
        train_steps(model, torch.optim.SGD(model.parameters(), lr=0.01), data, 100, emitter.log)
        emitter.unwatch(model)
        out.update(measure(emitter, model, args.device, args.segments, args.segment_steps, log_freq=100))
        out["watch_errors"] = run.summary.get("_pulse/watch_errors", 0)
        emitter.finish()
        client = QueryClient(address, api_key="")

        def query(sql: str) -> list[dict]:
            return client.query(sql, {"r": run.id}).to_pylist()

        out["gpu_keys"] = sorted({r["key"] for r in query(
            "SELECT DISTINCT key FROM system_metrics WHERE run_id = {r:String} AND startsWith(device, 'gpu')")})
        out["gpu_devices"] = sorted({r["device"] for r in query(
            "SELECT DISTINCT device FROM system_metrics WHERE run_id = {r:String} AND device != ''")})
        out["histogram_rows"] = query("SELECT count() AS n FROM histograms WHERE run_id = {r:String}")[0]["n"]
        params = len(list(model.parameters()))
        # 100 steps at log_freq 10, then the watched segments at log_freq 100
        out["histogram_rows_expected"] = 2 * params * (100 // 10 + args.segments * (args.segment_steps // 100))
        out["graph_stored"] = bool(query("SELECT graph FROM model_graphs WHERE run_id = {r:String}"))
        client.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
