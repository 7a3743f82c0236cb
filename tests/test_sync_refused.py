"""`pulse sync` of a run another live process writes says it was refused, at once, and keeps the spool.

A real ingest, a live stream holding the run, and the real `pulse sync` over a spool of the same run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from test_stream_ownership import RawStream, batch

from conftest import ROOT
from emitter.spool import Spool
from emitter.sync import sync


def test_sync_refused_by_a_live_owner_says_refused_and_keeps_the_spool(ingest, tmp_path):
    project, run_id = f"sync-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    owner = RawStream(ingest.address)
    owner.send(batch(project, run_id, f"{run_id}.live", 1, start=True))
    owner.wait_acked(1)
    spool = Spool(tmp_path / "spool" / f"{run_id}.dead")
    spool.append(1, batch(project, run_id, f"{run_id}.dead", 1, steps=range(3), replay=True).SerializeToString())
    spool.close()
    try:
        [result] = sync(tmp_path, server=ingest.address, timeout=600)
        assert not result.uploaded and result.failed and result.batches == 1
        assert result.reason.startswith(f"refused by the server: run {run_id!r} of project {project!r} is being "
                                        "written by another process")
        assert "the spool is kept" in result.reason and "not acknowledged" not in result.reason
        assert (tmp_path / "spool" / f"{run_id}.dead").is_dir()
        done = subprocess.run([sys.executable, "-m", "pulse.cli", "sync", str(tmp_path), "--timeout", "600"],
                              capture_output=True, text=True, cwd=ROOT, timeout=300,
                              env={**os.environ, "PULSE_SERVER": ingest.address, "PULSE_API_KEY": ""})
        assert done.returncode != 0 and "refused by the server: run" in done.stdout + done.stderr, done
        assert "not acknowledged in 600 s" not in done.stdout + done.stderr
    finally:
        owner.close()
    [result] = sync(tmp_path, server=ingest.address, timeout=120)  # the owner has let go: it uploads now
    assert result.uploaded and not (tmp_path / "spool" / f"{run_id}.dead").exists()
