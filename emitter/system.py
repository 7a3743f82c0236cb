"""The system monitor: a sampler thread for CPU, memory, disk, network, this process, and GPUs.

Every `interval` seconds (`PULSE_SYSTEM_INTERVAL`, default 2, 0 turns it off)
the thread takes one sample and queues it; the sender encodes samples into
the batch's columnar `SystemBlock`, which the ingest writes to
`system_metrics(host, device, key, ts, value)`. Host series have device "";
GPU series (through NVML, the `nvidia-ml-py` package) have device `gpu0`,
`gpu1`, ... No NVML, no driver or no GPU means no GPU series and one info
line, never an error. psutil and pynvml are imported by the thread, not by
`import emitter`.

Keys: cpu.percent, proc.cpu.percent, proc.threads, proc.rss_mb, mem.percent,
mem.used_mb, disk.used_percent, disk.read_mb_s, disk.write_mb_s,
net.sent_mb_s, net.recv_mb_s; per GPU gpu.util, gpu.mem_util,
gpu.mem_used_mb, gpu.mem_total_mb, gpu.power_w, gpu.power_limit_w,
gpu.temp_c, gpu.sm_clock_mhz, gpu.proc_mem_mb (this process). MB are 2**20 bytes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pulse.v1 import telemetry_pb2 as pb

log = logging.getLogger("pulse")
MB = float(1 << 20)
Sample = tuple[str, str, float]  # (key, device, value)
# NVML errors after which a metric is not asked for again on that device.
GIVE_UP_AFTER = 5
# Set by a parent that has said it for its children and wants them quiet (`pulse demo`); never set here.
NO_GPU_TOLD = "PULSE_NO_GPU_TOLD"
_told_no_gpu = bool(os.environ.get(NO_GPU_TOLD))


class SystemMonitor:
    """Samples the machine every `interval` seconds on a daemon thread; `emit(kind, payload)` queues it.

    `nvml` is the NVML module to use: "auto" imports `pynvml`, None turns GPU sampling off.
    """

    def __init__(self, emit: Callable[[str, Any], None], interval: float, nvml: Any = "auto",
                 disk_path: str | None = None) -> None:
        self.interval = interval
        self.samples = 0
        self.errors = 0
        self.last_error = ""
        self._emit = emit
        self._nvml = nvml
        self._disk_path = disk_path or os.getcwd()
        self._host = socket.gethostname()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pulse-system", daemon=True)
        self.gpus: GpuSampler | None = None

    def start(self) -> SystemMonitor:
        self.thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _run(self) -> None:
        try:
            machine = HostSampler(self._disk_path)
            self.gpus = GpuSampler.open(self._nvml)
        except Exception as exc:  # psutil missing or broken: no system series, the run goes on
            log.warning("pulse: system monitor off: %s: %s", type(exc).__name__, exc)
            return
        samplers = [machine] + ([self.gpus] if self.gpus else [])
        deadline = time.monotonic() + self.interval
        try:
            while not self._stop.wait(max(0.0, deadline - time.monotonic())):
                # Fixed-rate ticks; after a stall (a suspended process) skip the missed ones.
                deadline = max(deadline + self.interval, time.monotonic())
                ts_us = time.time_ns() // 1000
                samples: list[Sample] = []
                for sampler in samplers:
                    try:
                        samples += sampler.sample()
                    except Exception as exc:  # counted, logged once
                        self.errors += 1
                        self.last_error = f"{type(exc).__name__}: {exc}"
                        if self.errors == 1:
                            log.warning("pulse: system sampling failed (%s); the run goes on", self.last_error)
                if samples:
                    self.samples += 1
                    self._emit("deferred", SystemSample(ts_us, self._host, samples))
        finally:
            if self.gpus:
                self.gpus.close()


class SystemSample:
    """One tick of samples, queued as ("deferred", sample) and written into the batch's `SystemBlock`."""

    __slots__ = ("ts_us", "host", "samples")
    key = "system"
    weight = 0

    def __init__(self, ts_us: int, host: str, samples: list[Sample]) -> None:
        self.ts_us, self.host, self.samples = ts_us, host, samples

    def encode(self, batch: pb.Batch) -> None:
        block = batch.system
        block.host = self.host
        keys = {k: i for i, k in enumerate(block.keys)}
        devices = {d: i for i, d in enumerate(block.devices)}
        key_index, device_index, values = [], [], []
        for key, device, value in self.samples:
            if key not in keys:
                keys[key] = len(keys)
                block.keys.append(key)
            if device not in devices:
                devices[device] = len(devices)
                block.devices.append(device)
            key_index.append(keys[key])
            device_index.append(devices[device])
            values.append(value)
        block.key_index.extend(key_index)
        block.device_index.extend(device_index)
        block.ts_us.extend([self.ts_us] * len(values))
        block.value.extend(values)


class HostSampler:
    """CPU, memory, disk and network of the machine, and this process, through psutil."""

    def __init__(self, disk_path: str) -> None:
        import psutil

        self._psutil = psutil
        self._disk_path = disk_path
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first call only sets the reference point
        self._cpu = _busy_and_total(psutil.cpu_times())
        self._io = self._io_counters()
        self._at = time.monotonic()

    def _io_counters(self) -> tuple[Any, Any]:
        psutil = self._psutil
        try:
            disk = psutil.disk_io_counters()
        except (OSError, RuntimeError):
            disk = None  # no block devices visible (some containers)
        try:
            net = psutil.net_io_counters()
        except (OSError, RuntimeError):
            net = None
        return disk, net

    def sample(self) -> list[Sample]:
        psutil, process = self._psutil, self._process
        now = time.monotonic()
        elapsed = max(now - self._at, 1e-6)
        cpu = _busy_and_total(psutil.cpu_times())
        busy, total = cpu[0] - self._cpu[0], cpu[1] - self._cpu[1]
        with process.oneshot():
            values = {
                "cpu.percent": 100.0 * busy / total if total > 0 else 0.0,
                "proc.cpu.percent": process.cpu_percent(None),
                "proc.threads": float(process.num_threads()),
                "proc.rss_mb": process.memory_info().rss / MB,
            }
        memory = psutil.virtual_memory()
        values["mem.percent"] = memory.percent
        values["mem.used_mb"] = (memory.total - memory.available) / MB
        try:
            values["disk.used_percent"] = psutil.disk_usage(self._disk_path).percent
        except OSError:
            pass
        disk, net = self._io_counters()
        old_disk, old_net = self._io
        if disk is not None and old_disk is not None:
            values["disk.read_mb_s"] = max(0, disk.read_bytes - old_disk.read_bytes) / MB / elapsed
            values["disk.write_mb_s"] = max(0, disk.write_bytes - old_disk.write_bytes) / MB / elapsed
        if net is not None and old_net is not None:
            values["net.sent_mb_s"] = max(0, net.bytes_sent - old_net.bytes_sent) / MB / elapsed
            values["net.recv_mb_s"] = max(0, net.bytes_recv - old_net.bytes_recv) / MB / elapsed
        self._cpu, self._io, self._at = cpu, (disk, net), now
        return [(key, "", float(value)) for key, value in values.items()]


def _busy_and_total(times: Any) -> tuple[float, float]:
    """CPU seconds busy and in total, counted as psutil.cpu_percent counts them (iowait is idle)."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class GpuSampler:
    """Per-GPU series through NVML. A metric a device does not support is dropped for that device."""

    def __init__(self, nvml: Any, count: int) -> None:
        self.nvml = nvml
        self.devices = [(f"gpu{i}", nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        self._pid = os.getpid()
        self._failures: dict[tuple[str, str], int] = {}
        self.metrics: list[tuple[str, Callable[[Any], float | None]]] = [
            ("gpu.util", lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu),
            ("gpu.mem_util", lambda h: nvml.nvmlDeviceGetUtilizationRates(h).memory),
            ("gpu.mem_used_mb", lambda h: nvml.nvmlDeviceGetMemoryInfo(h).used / MB),
            ("gpu.mem_total_mb", lambda h: nvml.nvmlDeviceGetMemoryInfo(h).total / MB),
            ("gpu.power_w", lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
            ("gpu.power_limit_w", lambda h: nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0),
            ("gpu.temp_c", lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
            ("gpu.sm_clock_mhz", lambda h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)),
            ("gpu.proc_mem_mb", self._process_memory),
        ]

    @classmethod
    def open(cls, nvml: Any = "auto") -> GpuSampler | None:
        """A sampler over every GPU NVML sees, or None (and one info line) when there is none."""
        if nvml is None:
            return None
        try:
            if nvml == "auto":
                import pynvml as nvml
        except ImportError:
            _no_gpu("the nvidia-ml-py package (pynvml) is not installed")
            return None
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, NVMLError_DriverNotLoaded, ...
            _no_gpu(f"NVML is not available ({type(exc).__name__}: {exc})")
            return None
        try:
            count = nvml.nvmlDeviceGetCount()
            if count:
                return cls(nvml, count)
            _no_gpu("NVML sees no GPU")
        except Exception as exc:
            _no_gpu(f"NVML failed listing GPUs ({type(exc).__name__}: {exc})")
        _shutdown(nvml)
        return None

    def sample(self) -> list[Sample]:
        samples = []
        for device, handle in self.devices:
            for key, read in self.metrics:
                failures = self._failures.get((device, key), 0)
                if failures >= GIVE_UP_AFTER:
                    continue
                try:
                    value = read(handle)
                except Exception as exc:
                    # NOT_SUPPORTED (3) and NO_PERMISSION (4) will not change; anything else may pass
                    permanent = getattr(exc, "value", None) in (3, 4) or not isinstance(exc, self.nvml.NVMLError)
                    self._failures[(device, key)] = GIVE_UP_AFTER if permanent else failures + 1
                    continue
                self._failures.pop((device, key), None)
                if value is not None:
                    samples.append((key, device, float(value)))
        return samples

    def _process_memory(self, handle: Any) -> float | None:
        """This process's memory on the device; None when the driver does not say (WDDM)."""
        used = 0
        for proc in self.nvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == self._pid:
                if proc.usedGpuMemory is None:
                    return None
                used += proc.usedGpuMemory
        return used / MB

    def close(self) -> None:
        _shutdown(self.nvml)


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # shutting NVML down is best effort
        log.debug("nvmlShutdown failed", exc_info=True)


def _no_gpu(reason: str) -> None:
    """Say once per process why there are no GPU series.

    Not passed on to the processes this one starts: each of those that logs (a sweep trial run
    by `pulse agent`, a script's own subprocess) is a run of its own whose log is read on its
    own, so the line belongs there too; and a library must not change the environment of the
    user's children. A parent that has said it and wants its children quiet sets NO_GPU_TOLD in
    their environment itself (`pulse demo` does).
    """
    global _told_no_gpu
    if not _told_no_gpu:
        log.info("pulse: no GPU metrics: %s", reason)
    _told_no_gpu = True
