"""The system monitor's keys as people read them: titles, sections, and the y-range each deserves."""

from __future__ import annotations

SECTIONS = {"gpu": "GPU", "cpu": "CPU", "mem": "Memory", "disk": "Disk", "net": "Network", "proc": "Process"}
TITLES = {
    "gpu.util": "GPU utilisation (%)", "gpu.mem_used_mb": "GPU memory used (MB)",
    "gpu.mem_total_mb": "GPU memory total (MB)", "gpu.mem_percent": "GPU memory (%)",
    "gpu.power_w": "GPU power (W)", "gpu.power_limit_w": "GPU power limit (W)", "gpu.temp_c": "GPU temperature (°C)",
    "gpu.sm_clock_mhz": "GPU SM clock (MHz)", "gpu.mem_clock_mhz": "GPU memory clock (MHz)",
    "gpu.proc_mem_mb": "GPU memory of this process (MB)",
    "cpu.percent": "CPU (%)", "proc.cpu.percent": "Process CPU (%)", "proc.threads": "Process threads",
    "proc.rss_mb": "Process memory RSS (MB)", "mem.percent": "System memory (%)",
    "mem.used_mb": "System memory used (MB)", "mem.available_mb": "System memory available (MB)",
    "mem.total_mb": "System memory total (MB)", "disk.used_percent": "Disk used (%)",
    "gpu.mem_util": "GPU memory bandwidth (%)",
    "disk.read_mb_s": "Disk read (MB/s)", "disk.write_mb_s": "Disk write (MB/s)",
    "net.sent_mb_s": "Network sent (MB/s)", "net.recv_mb_s": "Network received (MB/s)",
}
UNITS = {"mb": "MB", "mb_s": "MB/s", "w": "W", "c": "°C", "mhz": "MHz", "percent": "%", "util": "%", "pct": "%"}


def title(key: str) -> str:
    """A label for any system key: the known ones by name, others from their parts
    (`gpu.fan_percent` -> "GPU fan (%)"), never the raw key beside labelled ones."""
    if key in TITLES:
        return TITLES[key]
    section, _, rest = key.partition(".")
    words = rest.replace(".", " ").split("_") if rest else [section]
    unit = ""
    for size in (2, 1):  # "mb_s" before "s"
        tail = "_".join(words[-size:])
        if len(words) > size and tail in UNITS:
            unit, words = UNITS[tail], words[:-size]
            break
    name = " ".join(words)
    prefix = SECTIONS.get(section, section.capitalize())
    text = f"{prefix} {name}" if name and name != section else prefix
    return f"{text} ({unit})" if unit else text


def is_percent(key: str) -> bool:
    return key.endswith(("percent", ".util", "_pct")) or title(key).endswith("(%)")
