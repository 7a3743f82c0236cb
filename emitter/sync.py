"""`pulse sync`: upload runs left in the spool (offline mode, an unreachable server, a kill)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .settings import Settings
from .spool import Spool, SpoolBusy, spooled_streams
from .transport import Transport

log = logging.getLogger("pulse")


@dataclass
class SyncResult:
    directory: Path
    batches: int
    uploaded: bool
    reason: str = ""


def sync(root: Path | None = None, server: str | None = None, timeout: float = 120.0) -> list[SyncResult]:
    """Upload every spooled stream under `root` (default PULSE_DIR); delete what the server acknowledged."""
    settings = Settings.resolve(server=server, dir=str(root) if root else None)
    results = []
    for directory in spooled_streams(settings.dir):
        try:
            spool = Spool(directory)
        except SpoolBusy as exc:
            results.append(SyncResult(directory, 0, False, str(exc)))
            continue
        batches = spool.pending
        transport = Transport(spool, settings.server, api_key=settings.api_key, tls_ca=settings.tls_ca,
                              replay=True, on_rejection=lambda r: log.warning(
                                  "pulse: the server rejected %s: %s", r.what, r.reason))
        transport.start()
        uploaded = transport.close(timeout)
        spool.close(remove_if_empty=True)
        results.append(SyncResult(directory, batches, uploaded,
                                  "" if uploaded else f"not acknowledged in {timeout:g} s: "
                                  f"{transport.last_error or 'no answer'}"))
    return results
