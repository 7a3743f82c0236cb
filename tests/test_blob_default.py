"""With a ClickHouse server and no PULSE_BLOB_URL, media bytes go to one per-user directory,
whichever directory the ingest starts in: `blobs` in `pulse.startup.default_data_dir()`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import ROOT, free_port, run_script, wait_for
from fixtures.clickhouse_http import serve_clickhouse_http
from ingest.blobs import default_blob_url


@pytest.fixture
def user_dirs(tmp_path, monkeypatch) -> Path:
    for name in ("PULSE_BLOB_URL", "PULSE_DATA", "XDG_DATA_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_a_server_stores_blobs_in_the_per_user_data_directory_from_any_start_directory(user_dirs, monkeypatch):
    seen = set()
    for start in ("a", "b/c"):
        (user_dirs / start).mkdir(parents=True)
        monkeypatch.chdir(user_dirs / start)
        seen.add(default_blob_url("http://clickhouse:8123/db"))
    assert seen == {str(user_dirs / "home" / ".local" / "share" / "pulse" / "blobs")}
    monkeypatch.setenv("XDG_DATA_HOME", str(user_dirs / "xdg"))
    assert default_blob_url("https://clickhouse:8443/db") == str(user_dirs / "xdg" / "pulse" / "blobs")
    monkeypatch.setenv("PULSE_DATA", "~/pulse-here")  # as a user writes it in a shell profile
    assert default_blob_url("http://clickhouse:8123/db") == str(user_dirs / "home" / "pulse-here" / "blobs")
    monkeypatch.setenv("PULSE_BLOB_URL", "s3://bucket/prefix")
    assert default_blob_url("http://clickhouse:8123/db") == "s3://bucket/prefix"


def test_the_embedded_store_keeps_its_blobs_beside_its_data(user_dirs):
    assert default_blob_url(f"chdb://{user_dirs / 'data'}") == str(user_dirs / "data" / "blobs")


def test_an_ingest_on_a_server_started_elsewhere_writes_an_image_to_the_user_directory(user_dirs, monkeypatch):
    """The real `pulse ingest --clickhouse http://...`, started in a scratch directory, and the real emitter."""
    monkeypatch.setenv("XDG_DATA_HOME", str(user_dirs / "xdg"))
    start = user_dirs / "somewhere"
    start.mkdir()
    port = free_port()
    with serve_clickhouse_http(user_dirs / "clickhouse") as url:
        log = open(user_dirs / "ingest.log", "w")
        ingest = subprocess.Popen([sys.executable, "-m", "pulse.cli", "ingest", "--clickhouse", url, "--port",
                                   str(port), "--sql-port", "0"], stdout=log, stderr=subprocess.STDOUT, cwd=start,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            wait_for(lambda: "listening on" in (user_dirs / "ingest.log").read_text() or ingest.poll() is not None,
                     timeout=60, what="ingest to listen")
            assert ingest.poll() is None, (user_dirs / "ingest.log").read_text()[-3000:]
            done = run_script("""
                import numpy as np
                import emitter
                with emitter.init(project="blobs", name="one-image") as run:
                    run.log({"img": emitter.Image(np.zeros((4, 4), np.uint8))}, step=0)
            """, env={"PULSE_SERVER": f"127.0.0.1:{port}", "PULSE_DIR": str(user_dirs / "spool"),
                      "PULSE_SYSTEM_INTERVAL": "0"})
            assert done.returncode == 0, done.stderr
            from pulse.client import QueryClient

            [uri] = QueryClient(f"127.0.0.1:{port}", api_key="").query(
                "SELECT uri FROM media WHERE project = 'blobs'").column("uri").to_pylist()
        finally:
            ingest.terminate()
            ingest.wait(60)
            log.close()
    path = Path(urlparse(uri).path)
    assert path.is_relative_to(user_dirs / "xdg" / "pulse" / "blobs") and path.is_file()
    assert not (start / "pulse-data").exists()
