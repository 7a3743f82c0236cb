"""The system monitor: host series at the configured interval; GPU series through NVML's API, or none."""

from __future__ import annotations

import inspect
import logging
import os
import statistics
import threading
import uuid

import pynvml
import pytest

import emitter
from conftest import run_script, wait_for
from emitter import system
from emitter.system import NO_GPU_TOLD, GpuSampler, SystemMonitor

HOST_KEYS = {"cpu.percent", "proc.cpu.percent", "proc.threads", "proc.rss_mb", "mem.percent", "mem.used_mb"}
GPU_KEYS = {"gpu.util", "gpu.mem_util", "gpu.mem_used_mb", "gpu.mem_total_mb", "gpu.power_w", "gpu.power_limit_w",
            "gpu.temp_c", "gpu.sm_clock_mhz", "gpu.proc_mem_mb"}

FIVE_SECOND_RUN = """
import sys, time
if "--no-pynvml" in sys.argv:
    sys.modules["pynvml"] = None  # as if nvidia-ml-py were not installed
import emitter
run = emitter.init(project={project!r})
start = time.monotonic()
while time.monotonic() - start < 5:
    emitter.log({{"x": 1.0}})
    time.sleep(0.05)
emitter.finish()
print("RUN", run.id)
"""


@pytest.mark.parametrize("nvml", ["library-missing", "module-missing"])
def test_a_five_second_run_has_cpu_and_memory_samples_at_the_interval_and_no_nvml_is_no_error(emitter_env, nvml,
                                                                                              monkeypatch):
    monkeypatch.delenv(NO_GPU_TOLD, raising=False)  # the trainer starts as from a fresh shell, whatever ran before
    project = f"sys-{uuid.uuid4().hex[:8]}"
    done = run_script(FIVE_SECOND_RUN.format(project=project), {"PULSE_SYSTEM_INTERVAL": "0.5"},
                      args=["--no-pynvml"] if nvml == "module-missing" else [])
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split("RUN ")[1].strip()
    rows = emitter_env.query("SELECT key, device, host, toUnixTimestamp64Micro(ts) AS ts FROM system_metrics "
                             "WHERE run_id = {r:String} ORDER BY key, ts", r=run_id)
    assert HOST_KEYS <= {r["key"] for r in rows}
    assert {r["device"] for r in rows} == {""}  # no GPU series
    assert len({r["host"] for r in rows}) == 1
    stamps = [r["ts"] for r in rows if r["key"] == "cpu.percent"]
    assert 5 <= len(stamps) <= 11
    gaps = [(b - a) / 1e6 for a, b in zip(stamps, stamps[1:])]
    assert 0.4 <= statistics.median(gaps) <= 0.75
    [info] = [line for line in done.stderr.splitlines() if "GPU" in line]
    assert info == "pulse: no GPU metrics: " + (
        "NVML is not available (NVMLError_LibraryNotFound: NVML Shared Library Not Found)"
        if nvml == "library-missing" else "the nvidia-ml-py package (pynvml) is not installed")
    assert "Traceback" not in done.stderr and "failed" not in done.stderr


def test_interval_zero_turns_the_monitor_off(emitter_env, monkeypatch):
    monkeypatch.setenv("PULSE_SYSTEM_INTERVAL", "0")
    run = emitter.init(project=f"sys-{uuid.uuid4().hex[:8]}")
    assert "pulse-system" not in {t.name for t in threading.enumerate()}
    emitter.log({"x": 1})
    emitter.finish()
    assert emitter_env.scalar("SELECT count() FROM system_metrics WHERE run_id = {r:String}", r=run.id) == 0


class FakeNVML:
    """The real pynvml module (constants, error classes, result structs) with the calls that reach the
    driver answered here: two GPUs; gpu1 does not support power readings; one transient error."""

    def __init__(self, pid: int) -> None:
        for name in dir(pynvml):
            if name.startswith(("NVML", "c_nvml", "nvmlStruct")):
                setattr(self, name, getattr(pynvml, name))
        self.pid = pid
        self.calls: dict[str, int] = {}
        self.shut_down = False

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def nvmlInit(self):
        self._count("nvmlInit")

    def nvmlShutdown(self):
        self.shut_down = True

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return f"handle{index}"

    def nvmlDeviceGetUtilizationRates(self, handle):
        self._count("util")
        if handle == "handle0" and self.calls["util"] == 1:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)  # transient: only this tick is lost
        return pynvml.c_nvmlUtilization_t(gpu=87 if handle == "handle0" else 3, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        return pynvml.c_nvmlMemory_t(total=80 << 30, free=60 << 30, used=20 << 30)

    def nvmlDeviceGetPowerUsage(self, handle):
        self._count(f"power {handle}")
        if handle == "handle1":
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return 312_500  # mW

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        return 64

    def nvmlDeviceGetClockInfo(self, handle, type):
        assert type == pynvml.NVML_CLOCK_SM
        return 1980

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        if handle == "handle1":
            return []
        procs = [pynvml.c_nvmlProcessInfo_v3_t(pid=self.pid, usedGpuMemory=512 << 20),
                 pynvml.c_nvmlProcessInfo_v3_t(pid=self.pid + 1, usedGpuMemory=1 << 30)]
        return [pynvml.nvmlStructToFriendlyObject(p) for p in procs]


def test_fake_nvml_has_the_real_api_shape():
    fake = FakeNVML(1)
    for name, member in inspect.getmembers(FakeNVML, inspect.isfunction):
        if name.startswith("nvml"):
            real = getattr(pynvml, name)
            assert list(inspect.signature(real).parameters) == list(inspect.signature(member).parameters)[1:], name
    assert fake.NVMLError is pynvml.NVMLError


def test_gpu_sampler_reads_every_series_in_the_right_units_and_drops_what_a_device_cannot_do():
    nvml = FakeNVML(os.getpid())
    sampler = GpuSampler.open(nvml)
    first = {(key, device): value for key, device, value in sampler.sample()}
    assert ("gpu.util", "gpu0") not in first  # the transient error
    samples = {(key, device): value for key, device, value in sampler.sample()}
    assert {key for key, device in samples if device == "gpu0"} == GPU_KEYS
    assert {key for key, device in samples if device == "gpu1"} == GPU_KEYS - {"gpu.power_w"}
    assert samples[("gpu.util", "gpu0")] == 87 and samples[("gpu.util", "gpu1")] == 3
    assert samples[("gpu.mem_used_mb", "gpu0")] == 20 * 1024 and samples[("gpu.mem_total_mb", "gpu0")] == 80 * 1024
    assert samples[("gpu.power_w", "gpu0")] == 312.5 and samples[("gpu.power_limit_w", "gpu1")] == 700.0
    assert samples[("gpu.temp_c", "gpu0")] == 64 and samples[("gpu.sm_clock_mhz", "gpu1")] == 1980
    assert samples[("gpu.proc_mem_mb", "gpu0")] == 512 and samples[("gpu.proc_mem_mb", "gpu1")] == 0
    assert nvml.calls["power handle1"] == 1  # NOT_SUPPORTED: not asked again
    sampler.close()
    assert nvml.shut_down


def test_no_nvml_driver_or_gpu_means_no_gpu_sampler_and_one_info_line(monkeypatch, caplog):
    class NoDriver(FakeNVML):
        def nvmlInit(self):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    class NoGpu(FakeNVML):
        def nvmlDeviceGetCount(self):
            return 0

    monkeypatch.setattr(system, "_told_no_gpu", False)
    monkeypatch.delenv(NO_GPU_TOLD, raising=False)
    with caplog.at_level(logging.INFO, logger="pulse"):
        assert GpuSampler.open(NoDriver(1)) is None
        no_gpu = NoGpu(1)
        assert GpuSampler.open(no_gpu) is None
        assert GpuSampler.open(None) is None
    assert [r.getMessage() for r in caplog.records] == [
        "pulse: no GPU metrics: NVML is not available (NVMLError_DriverNotLoaded: Driver Not Loaded)"]
    assert no_gpu.shut_down
    assert NO_GPU_TOLD not in os.environ  # once per process: the processes it starts say it in their own logs


def test_gpu_series_reach_system_metrics_with_their_device(emitter_env, monkeypatch):
    monkeypatch.setenv("PULSE_SYSTEM_INTERVAL", "0")
    run = emitter.init(project=f"sys-{uuid.uuid4().hex[:8]}")
    monitor = SystemMonitor(run._enqueue, 0.1, nvml=FakeNVML(os.getpid())).start()
    wait_for(lambda: monitor.samples >= 3, timeout=30, what="three samples")
    monitor.stop()
    emitter.finish()
    rows = emitter_env.query("SELECT device, key, count() AS n FROM system_metrics WHERE run_id = {r:String} "
                             "GROUP BY device, key", r=run.id)
    by_device = {}
    for r in rows:
        by_device.setdefault(r["device"], set()).add(r["key"])
    assert by_device["gpu0"] == GPU_KEYS and by_device["gpu1"] == GPU_KEYS - {"gpu.power_w"}
    assert HOST_KEYS <= by_device[""]
    assert monitor.errors == 0


def test_a_gpu_lost_mid_run_is_given_up_after_a_few_tries_without_an_error():
    class LosesGpu1(FakeNVML):
        lost = False

        def nvmlDeviceGetTemperature(self, handle, sensor):
            self._count(f"temp {handle}")
            if handle == "handle1" and self.lost:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
            return 50

    nvml = LosesGpu1(os.getpid())
    sampler = GpuSampler.open(nvml)
    assert ("gpu.temp_c", "gpu1", 50.0) in sampler.sample()
    nvml.lost = True
    for _ in range(10):
        samples = sampler.sample()
        assert ("gpu.temp_c", "gpu1") not in {(key, device) for key, device, _ in samples}
        assert ("gpu.temp_c", "gpu0", 50.0) in samples
    assert nvml.calls["temp handle1"] == 1 + system.GIVE_UP_AFTER
