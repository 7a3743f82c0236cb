"""A newcomer's first run: one data directory, one-line refusals, a banner that means it, a warning in time."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, Ingest, free_port, run_script, wait_for
from emitter.system import NO_GPU_TOLD
from pulse.channel import DEFAULT_PORT, with_default_port


def pulse(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pulse.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=120)


def one_line_refusal(done: subprocess.CompletedProcess) -> str:
    """The stderr of a command refused with exit 2 in one line, no traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if " INFO " not in line]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.parametrize("flag,command", [("--port", "ingest"), ("--sql-port", "ingest"), ("--ui-port", "up")])
def test_a_taken_port_is_refused_in_one_line_naming_the_flag(tmp_path, flag, command):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"--port": str(free_port()), "--sql-port": "0", "--ui-port": str(free_port())}
        ports[flag] = str(port)
        args = [command, "--data", str(tmp_path / "data"), "--port", ports["--port"],
                "--sql-port", ports["--sql-port"]]
        if command == "up":
            args += ["--ui-port", ports["--ui-port"]]
        line = one_line_refusal(pulse(*args))
    assert f"port {port} on 127.0.0.1 is taken" in line and flag in line
    assert not any((tmp_path / "data").iterdir())  # refused before the store was opened


def test_a_data_directory_in_use_is_refused_naming_its_owner(tmp_path):
    first = Ingest(tmp_path / "data").start()
    try:
        line = one_line_refusal(pulse("ingest", "--data", str(tmp_path / "data"), "--port", str(free_port())))
        assert f"{(tmp_path / 'data').resolve()} is in use by pid {first.process.pid}" in line
        assert "pulse.cli ingest" in line and "--data" in line
    finally:
        first.stop()
    second = Ingest(tmp_path / "data").start()  # the lock goes with its owner, however it ended
    second.kill()
    Ingest(tmp_path / "data").start().stop()


def test_one_default_data_directory_whichever_directory_pulse_starts_in(tmp_path):
    code = "from pulse.cli import build_parser; print(build_parser().parse_args(['up']).data)"
    home = {"HOME": str(tmp_path / "home")}
    env = {k: v for k, v in os.environ.items() if k not in ("PULSE_DATA", "XDG_DATA_HOME")}
    for cwd in (tmp_path, ROOT):
        done = subprocess.run([sys.executable, "-c", code], env={**env, **home}, cwd=cwd, capture_output=True,
                              text=True, timeout=60)
        assert done.stdout.strip() == str(tmp_path / "home" / ".local" / "share" / "pulse"), done.stderr
    xdg = subprocess.run([sys.executable, "-c", code], env={**env, **home, "XDG_DATA_HOME": str(tmp_path / "xdg")},
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert xdg.stdout.strip() == str(tmp_path / "xdg" / "pulse")
    explicit = subprocess.run([sys.executable, "-c", code], env={**env, "PULSE_DATA": str(tmp_path / "mine")},
                              capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert explicit.stdout.strip() == str(tmp_path / "mine")


def test_the_banner_prints_once_the_dashboard_answers(tmp_path):
    port, ui_port = free_port(), free_port()
    log = tmp_path / "up.log"
    up = subprocess.Popen([sys.executable, "-m", "pulse.cli", "up", "--data", str(tmp_path / "data"), "--port",
                           str(port), "--ui-port", str(ui_port), "--sql-port", "0"],
                          stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: "pulse: dashboard at" in log.read_text() or up.poll() is not None, timeout=180,
                 what="the banner")
        assert up.poll() is None, log.read_text()
        # No retry: when the banner is out, the page answers.
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/_stcore/health", timeout=10) as reply:
            assert reply.status == 200
    finally:
        up.terminate()
        up.wait(60)


def test_init_warns_within_two_seconds_when_the_server_is_unreachable_and_keeps_logging(tmp_path):
    port = free_port()  # nothing listens there
    done = run_script("""
        import threading, emitter
        run = emitter.init(project="offline-check")  # starts warn_if_unreachable(PULSE_SERVER)
        for step in range(100):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        print("logged while the check ran", flush=True)
        for thread in threading.enumerate():
            if thread.name == "pulse-reachability":
                thread.join()
        run.finish()
    """, env={"PULSE_SERVER": f"127.0.0.1:{port}", "PULSE_DIR": str(tmp_path / "spool"),
                     "PULSE_FINISH_TIMEOUT": "1", "PULSE_SYSTEM_INTERVAL": "0"})
    assert done.returncode == 0, done.stderr
    assert "logged while the check ran" in done.stdout
    assert f"cannot reach the ingest at 127.0.0.1:{port} within 2 s (PULSE_SERVER)" in done.stderr
    assert done.stderr.count("cannot reach the ingest") == 1
    assert any((tmp_path / "spool").rglob("*")), "the run kept its data in the spool"


def test_pulse_server_without_a_port_means_the_ingest_port():
    assert DEFAULT_PORT == 50051
    assert with_default_port("localhost") == "localhost:50051"
    assert with_default_port("ingest.lan:9000") == "ingest.lan:9000"
    assert with_default_port("::1") == "[::1]:50051" and with_default_port("[::1]:7") == "[::1]:7"


def test_an_address_without_port_reaches_the_ingest_on_50051(tmp_path):
    """A real ingest on 50051 where that port is free on this machine (else the check cannot be made here)."""
    if not _free(DEFAULT_PORT):
        pytest.skip("port 50051 is in use on this machine")
    ingest = Ingest(tmp_path / "data", port=DEFAULT_PORT).start()
    try:
        from pulse.client import QueryClient

        assert QueryClient("127.0.0.1").query("SELECT 1 AS one").to_pylist() == [{"one": 1}]
    finally:
        ingest.stop()


def _free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_the_no_gpu_line_is_said_once_per_process_and_a_child_says_it_unless_its_parent_asks_not():
    """A child that logs (a sweep trial, a script's subprocess) is a run of its own with its own log:
    the emitter does not silence it by changing the environment; `pulse demo` asks its runs to
    stay quiet by setting NO_GPU_TOLD for them."""
    script = textwrap.dedent("""
        import logging, os, subprocess, sys
        logging.basicConfig(level=logging.INFO)
        from emitter.system import NO_GPU_TOLD, GpuSampler
        for _ in range(3):
            GpuSampler.open(object())  # an NVML without nvmlInit: no GPU series
        assert NO_GPU_TOLD not in os.environ
        child = "import logging; logging.basicConfig(level=logging.INFO); from emitter.system import GpuSampler; "
        child += "GpuSampler.open(object())"
        subprocess.run([sys.executable, "-c", child], check=True)  # says it in its own log
        subprocess.run([sys.executable, "-c", child], check=True, env={**os.environ, NO_GPU_TOLD: "1"})
    """)
    env = {k: v for k, v in os.environ.items() if k != NO_GPU_TOLD}  # as a fresh shell starts it
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("no GPU metrics") == 2, done.stderr
