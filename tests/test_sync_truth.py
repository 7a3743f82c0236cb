"""`pulse sync` tells the truth, spilled rows survive a kill while the sender takes them, and the
wire's metadata names are spelled once.

Real spools (written in the spool's own record format, or by a real trainer process), a real
ingest, and the real `pulse sync` command in a subprocess; every case counts the store.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import ROOT, Ingest, run_script
from emitter.overflow import TAKING
from emitter.rejected import rejected_dir
from emitter.spool import OVERFLOW, Spool
from pulse.v1 import telemetry_pb2 as pb


def stored(server: Ingest, project: str, run_id: str) -> dict[tuple[str, int], float]:
    rows = server.query("SELECT key, step, value FROM metrics FINAL WHERE project = {p:String} AND "
                        "run_id = {r:String}", p=project, r=run_id)
    assert len(rows) == len({(r["key"], r["step"]) for r in rows}), "a point is stored twice"
    return {(r["key"], r["step"]): r["value"] for r in rows}


def pulse_sync(pulse_dir: Path, server: Ingest) -> subprocess.CompletedProcess:
    """The `pulse` command itself, as a user runs it."""
    env = {**os.environ, "PULSE_DIR": str(pulse_dir), "PULSE_SERVER": server.address}
    return subprocess.run([sys.executable, "-m", "pulse.cli", "sync"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def _batch(project: str, run_id: str, stream_id: str, seq: int, step: int, name: str = "") -> bytes:
    batch = pb.Batch(project=project, run_id=run_id, stream_id=stream_id, seq=seq)
    if name:
        batch.events.append(pb.Event(start=pb.RunStart(name=name, created_at_us=time.time_ns() // 1000)))
    batch.scalars.keys.append("a")
    batch.scalars.key_index.append(0)
    batch.scalars.step.append(step)
    batch.scalars.ts_us.append(time.time_ns() // 1000)
    batch.scalars.value.append(float(step))
    return batch.SerializeToString()


# -- a batch set aside in rejected/ makes `pulse sync` fail, naming it -----------------------------


def test_pulse_sync_names_a_batch_the_server_refused_whole_and_exits_1_storing_the_others(ingest, tmp_path):
    project, run_id, stream_id = f"truth-{uuid.uuid4().hex[:8]}", f"r{uuid.uuid4().hex[:8]}", "s1"
    pulse_dir = tmp_path / "pulse"
    directory = pulse_dir / "spool" / f"{run_id}.{stream_id}"
    spool = Spool(directory)
    # Over the server's 32 MiB limit: refused as a whole, whatever the server's mood.
    oversize = pb.Batch(project=project, run_id=run_id, stream_id=stream_id, seq=2,
                        media=[pb.Media(key="m", data=b"\0" * (33 << 20))]).SerializeToString()
    for seq, data in [(1, _batch(project, run_id, stream_id, 1, 0, name="truth")), (2, oversize),
                      (3, _batch(project, run_id, stream_id, 3, 1))]:
        spool.append(seq, data)
    spool.close(remove_if_empty=False)

    synced = pulse_sync(pulse_dir, ingest)

    assert synced.returncode == 1, synced.stdout + synced.stderr
    kept = rejected_dir(directory) / "00000002.pb"
    line = next(x for x in synced.stderr.splitlines() if x.startswith(f"pulse sync: {directory.name}: batch 2 "))
    assert "REFUSED by the server" in line and "exceeds the limit" in line and str(kept) in line, line
    assert "1 of them REFUSED by the server and not stored" in synced.stdout, synced.stdout
    assert "Traceback" not in synced.stderr, synced.stderr
    assert kept.read_bytes() == oversize and "exceeds the limit" in kept.with_suffix(".txt").read_text()
    assert stored(ingest, project, run_id) == {("a", 0): 0.0, ("a", 1): 1.0}
    assert not directory.exists()  # nothing left to resend: the refused batch is in rejected/, not the spool


def test_pulse_sync_of_a_run_whose_start_the_server_refuses_exits_1_naming_every_batch(ingest, tmp_path):
    project, run_id, stream_id = f"truth-{uuid.uuid4().hex[:8]}", f"r{uuid.uuid4().hex[:8]}", "s1"
    pulse_dir = tmp_path / "pulse"
    directory = pulse_dir / "spool" / f"{run_id}.{stream_id}"
    spool = Spool(directory)
    spool.append(1, _batch(project, run_id, stream_id, 1, 0, name="two\nlines"))  # init() refuses it; sync may not
    for seq in (2, 3):
        spool.append(seq, _batch(project, run_id, stream_id, seq, seq - 1))
    spool.close(remove_if_empty=False)

    synced = pulse_sync(pulse_dir, ingest)

    assert synced.returncode == 1, synced.stdout + synced.stderr
    refused = [x for x in synced.stderr.splitlines() if "REFUSED by the server" in x]
    assert [x.split(": batch ")[1].split()[0] for x in refused] == ["1", "2", "3"], synced.stderr
    assert stored(ingest, project, run_id) == {}
    assert sorted(p.name for p in rejected_dir(directory).glob("*.pb")) == [f"0000000{n}.pb" for n in (1, 2, 3)]


# -- spilled rows survive a kill while the sender takes them ---------------------------------------

SPILLER = """
import os, time, emitter
run = emitter.init(project=os.environ["TRUTH_PROJECT"])
run._batcher.flush(30)  # the run's start is spooled; every log() below spills (a queue bound of 0)
print("RUN", run.id, run.spool.directory.name, flush=True)
for step in range(512):  # the 512th spilled row writes the overflow file; the sender then takes it
    emitter.log({"loss": step * 0.5, "acc": step * 0.25}, step=step)
time.sleep(120)  # PULSE_TEST_KILL_IN_OVERFLOW_TAKE kills this process in the sender's take
"""


@pytest.mark.parametrize("kill_at", ["taken", "appended"])
def test_spilled_rows_survive_a_sigkill_while_the_sender_takes_them_and_pulse_sync_stores_each(
        ingest, tmp_path, kill_at):
    """Killed after the overflow file was taken but before its rows reached the spool, or after they
    did but before the file was removed: either way the rows are on disk, and sync stores them all."""
    project, pulse_dir = f"take-{uuid.uuid4().hex[:8]}", tmp_path / "pulse"
    killed = run_script(SPILLER, {"PULSE_MODE": "offline", "PULSE_DIR": str(pulse_dir),
                                  "PULSE_QUEUE_MAX_VALUES": "0", "PULSE_SYSTEM_INTERVAL": "0",
                                  "PULSE_CONSOLE": "off", "TRUTH_PROJECT": project,
                                  "PULSE_TEST_KILL_IN_OVERFLOW_TAKE": kill_at})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    _, run_id, stream_id = next(x for x in killed.stdout.splitlines() if x.startswith("RUN ")).split()
    stream = pulse_dir / "spool" / stream_id
    assert (stream / TAKING).exists() and not (stream / OVERFLOW).exists()  # killed where the hook says

    synced = pulse_sync(pulse_dir, ingest)

    assert synced.returncode == 0, synced.stdout + synced.stderr
    want = {(key, step): step * scale for step in range(512) for key, scale in (("loss", 0.5), ("acc", 0.25))}
    assert stored(ingest, project, run_id) == want
    assert not any((pulse_dir / "spool").iterdir())


# -- the wire's metadata names are spelled once ----------------------------------------------------


def test_each_wire_metadata_name_is_spelled_once_in_pulse_wire():
    """Both sides import the trailer and header names from pulse/wire.py: a literal copy elsewhere
    could drift (a renamed trailer the other side never reads), so none may exist."""
    import pulse.wire

    names = {value for key, value in vars(pulse.wire).items() if key.isupper() and isinstance(value, str)}
    assert {"x-pulse-refused-seq", "retry-after-ms", "x-pulse-run", "committed-offset"} <= names
    copies = [f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
              for folder in ("emitter", "ingest", "pulse", "dashboard", "compat")
              for path in sorted((ROOT / folder).rglob("*.py")) if path != ROOT / "pulse" / "wire.py"
              for node in ast.walk(ast.parse(path.read_text(), str(path)))
              if isinstance(node, ast.Constant) and node.value in names]
    assert copies == []
