"""Where the emitter sends, and how: explicit arguments beat environment, environment beats defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MODES = ("online", "offline", "disabled")


@dataclass
class Settings:
    server: str = "127.0.0.1:50051"
    api_key: str = ""
    mode: str = "online"
    project: str = "uncategorized"
    dir: Path = Path(".pulse")
    ui_url: str = ""
    tls_ca: str = ""
    # Seconds `finish()` waits for the server to acknowledge everything.
    finish_timeout: float = 30.0
    # Bound of the in-memory queue, in values; past it records spill to disk.
    queue_max_values: int = 1_000_000
    spool_max_mb: int = 0
    flush_interval: float = 0.1
    heartbeat_interval: float = 5.0
    # Seconds between system samples (CPU, memory, disk, network, GPUs); 0 turns the monitor off.
    system_interval: float = 2.0
    # "wrap": stdout and stderr are teed to the run's console (emitter/console.py); "off": not.
    console: str = "wrap"

    @classmethod
    def resolve(cls, **explicit) -> Settings:
        env = os.environ
        values = {
            "server": env.get("PULSE_SERVER"),
            "api_key": env.get("PULSE_API_KEY"),
            "mode": env.get("PULSE_MODE"),
            "project": env.get("PULSE_PROJECT"),
            "dir": env.get("PULSE_DIR"),
            "ui_url": env.get("PULSE_UI_URL"),
            "tls_ca": env.get("PULSE_TLS_CA"),
            "finish_timeout": env.get("PULSE_FINISH_TIMEOUT"),
            "queue_max_values": env.get("PULSE_QUEUE_MAX_VALUES"),
            "spool_max_mb": env.get("PULSE_SPOOL_MAX_MB"),
            "heartbeat_interval": env.get("PULSE_HEARTBEAT_INTERVAL"),
            "system_interval": env.get("PULSE_SYSTEM_INTERVAL"),
            "console": env.get("PULSE_CONSOLE"),
        }
        values.update({k: v for k, v in explicit.items() if v is not None})
        settings = cls()
        for name, value in values.items():
            if value is None or value == "":
                continue
            kind = type(getattr(settings, name))
            setattr(settings, name, kind(value))
        if settings.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {settings.mode!r}")
        if not settings.ui_url:
            host = settings.server.rsplit(":", 1)[0] or "127.0.0.1"
            settings.ui_url = f"http://{host}:8501"
        return settings
