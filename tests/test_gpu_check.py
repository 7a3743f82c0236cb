"""bench.gpu_check in two halves, as a GPU machine without chDB runs it: offline there, synced into an ingest here.

Run here on the CPU (no GPU, no NVML), so the GPU figures are empty; what is
checked is the path: the offline run's histograms, graph and figures reach a
real ingest through `pulse sync`, and the statistics checks hold.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def gpu_check(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--device", "cpu", "--segments", "1",
                           "--segment-steps", "100", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_offline_gpu_check_uploads_every_histogram_and_the_graph_to_a_real_ingest(tmp_path):
    offline = gpu_check("--offline", str(tmp_path))
    assert offline["histc_exact"] is True and offline["group_exact"] is True
    assert offline["nvml_gpus"] == 0 and offline["watch_errors"] == 0
    assert (tmp_path / "spool").is_dir()

    uploaded = gpu_check("--upload", str(tmp_path))
    assert uploaded["sync_errors"] == [] and uploaded["synced_batches"] > 0
    assert uploaded["histogram_rows"] == offline["histogram_rows_expected"] > 0
    assert uploaded["graph_stored"] is True
    # NaN poured into one weight's gradient: flagged once, in the summary and as a stored alert
    [(kind, flags)] = offline["gradient_health"].items()
    assert kind == "nonfinite" and [name.split("/")[-1] for name in flags] == ["fc2.weight"]
    assert [title.split("/")[-1] for title in uploaded["health_alerts"]] == ["fc2.weight"]
    assert uploaded["health_alerts"][0].startswith("ERROR Gradient nonfinite: ")
    assert uploaded["run_id"] == offline["run_id"] and uploaded["gpu_keys"] == []
    assert not list((tmp_path / "spool").glob("*/*.wal"))  # acknowledged, so removed
