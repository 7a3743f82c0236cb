"""A 1 GB artifact over loopback: upload and download speed, what a second log re-sends, and the emitter's memory.

A trainer process (a subprocess of its own, so its peak RSS is its alone) adds
`--files` files of `--mb` MB in total (real bytes: a random block, each 1 MiB
stamped with its index, so nothing is sparse or compressible by the store) and
logs them as an artifact, waiting for the commit; logs the same files again as a
new Artifact object; then uses the artifact and downloads it (every sha256
checked). `dedup_upload_bytes` is what the ingest received for the second log, as
its log lines count it.

    python -m bench.artifacts [--mb 1024] [--files 4]

upload_mb_s: log_artifact until committed (the upload: HaveBlobs, chunks, verify, commit);
hash_mb_s: add_file (sha256 of each file, read once); download_mb_s: use_artifact + download.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from bench.harness import ingest_process

TRAINER = textwrap.dedent("""
    import json, os, sys, time
    import emitter
    from bench.harness import peak_rss_mb

    files = sys.argv[1:]
    run = emitter.init(project="bench-artifacts")
    t0 = time.perf_counter()
    artifact = emitter.Artifact("checkpoint", type="model")
    for path in files:
        artifact.add_file(path)
    t1 = time.perf_counter()
    run.log_artifact(artifact).wait()
    t2 = time.perf_counter()
    again = emitter.Artifact("checkpoint", type="model")
    for path in files:
        again.add_file(path)
    run.log_artifact(again).wait()
    t3 = time.perf_counter()
    used = run.use_artifact("checkpoint:latest")
    root = used.download(os.environ["BENCH_DOWNLOAD"])
    t4 = time.perf_counter()
    run.finish()
    size = artifact.size
    print(json.dumps({"bytes": size, "hash_s": t1 - t0, "upload_s": t2 - t1, "download_s": t4 - t3,
                      "versions": [artifact.version, again.version],
                      # VmHWM: ru_maxrss would carry the forking parent's peak across exec
                      "rss_kb": int(peak_rss_mb(os.getpid()) * 1024)}))
""")


def write_files(folder: Path, total_mb: int, count: int) -> list[Path]:
    """`count` files of `total_mb` MB together: real, distinct bytes, written quickly."""
    block = bytearray(os.urandom(1 << 20))
    per_file = (total_mb << 20) // count
    paths = []
    for n in range(count):
        path = folder / f"shard-{n}.bin"
        with open(path, "wb") as f:
            for i in range(per_file >> 20):
                block[:16] = n.to_bytes(8, "little") + i.to_bytes(8, "little")
                f.write(block)
        paths.append(path)
    return paths


def received_after(lines: list[str]) -> int:
    """Blob bytes the ingest says it received in these log lines."""
    return sum(int(m.group(1)) for line in lines
               if (m := re.search(r"artifact blob \w+ of \S+: (\d+) bytes received", line)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--files", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulse-bench-artifacts-") as tmp, \
            ingest_process() as (address, process):
        files = write_files(Path(tmp), args.mb, args.files)
        log_path = Path(process.args[process.args.index("--data") + 1]).parent / "ingest.log"
        env = {**os.environ, "PULSE_SERVER": address, "PULSE_SYSTEM_INTERVAL": "0",
               "PULSE_FINISH_TIMEOUT": "600", "BENCH_DOWNLOAD": f"{tmp}/download"}
        done = subprocess.run([sys.executable, "-c", TRAINER, *map(str, files)], env=env, capture_output=True,
                              text=True, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"trainer failed: {done.stderr[-3000:]}")
        figures = json.loads(done.stdout.splitlines()[-1])
        log = log_path.read_text().splitlines()
        # The second log's uploads: every "bytes received" line after the first version's commit.
        first_commit = next(i for i, line in enumerate(log) if "checkpoint:v0 committed" in line)
        mb = figures["bytes"] / 1e6
        print(json.dumps({
            "upload_mb_s": round(mb / figures["upload_s"], 1),
            "dedup_upload_bytes": received_after(log[first_commit + 1:]),
            "emitter_peak_rss_mb": round(figures["rss_kb"] / 1024, 1),
            "download_mb_s": round(mb / figures["download_s"], 1),
            "hash_mb_s": round(mb / figures["hash_s"], 1),
            "artifact_mb": round(mb, 1), "files": args.files, "versions": figures["versions"],
        }))


if __name__ == "__main__":
    main()
