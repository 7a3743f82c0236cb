"""`finish()`'s closing line: what is stored, what was dropped and why, and where the rest is.

It states what the server acknowledged, never what was merely sent: a run whose start the
server refused is never called finished, and batches left in the spool or set aside as refused
are counted with the directory that holds them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .transport import RefusedBatch


@dataclass
class Outcome:
    """What one run's process knows at the end of `finish()`."""

    run_id: str
    state: str  # how this process ended the run: finished, failed, killed
    mode: str  # online or offline
    server: str
    url: str
    spool_dir: Path
    rejected_dir: Path
    delivered: bool  # the server acknowledged every batch
    points_written: int  # metric points in batches on the spool, all told
    points_left: int  # of those, not acknowledged (still in the spool)
    batches_left: int
    refused: list[RefusedBatch] = field(default_factory=list)  # refused whole, set aside
    start_refused: str = ""  # why the server refused the run's start
    stream_refused: str = ""  # why the server refused the stream (another process writes the run)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> metric points never sent
    dropped_records: int = 0  # histograms, images, system samples dropped by a full spool
    unwritten_batches: int = 0  # batches the disk refused
    server_rejections: int = 0  # records the server refused inside batches it stored
    sender_errors: int = 0
    last_error: str = ""

    @property
    def points_stored(self) -> int:
        return self.points_written - self.points_left - sum(b.points for b in self.refused)


def closing_lines(o: Outcome) -> list[tuple[int, str]]:
    """(logging level, line) pairs, the headline first."""
    lines = [_headline(o)]
    dropped = {reason: n for reason, n in o.dropped.items() if n}
    if dropped.get("spool full"):
        lines.append((logging.WARNING, f"pulse: {dropped['spool full']:,} metric points DROPPED because the spool "
                      "was full (PULSE_SPOOL_MAX_MB)" + (f", and {o.dropped_records:,} histograms, images and "
                                                         "system samples" if o.dropped_records else "")))
    refused = [b for b in o.refused if not o.start_refused]
    if refused:
        lines.append((logging.ERROR, f"pulse: the server refused {len(refused):,} batches "
                      f"({sum(b.points for b in refused):,} metric points) as a whole (first: {refused[0].reason}); "
                      f"they are not stored and are kept in {o.rejected_dir}"))
    if o.unwritten_batches:
        lines.append((logging.ERROR, f"pulse: {o.unwritten_batches:,} batches could not be written to the spool "
                      f"({o.spool_dir}: the disk refused them) and were never sent"))
    if o.server_rejections:
        lines.append((logging.WARNING, f"pulse: the server rejected {o.server_rejections:,} records within batches "
                      "it stored (see the warnings above)"))
    if o.sender_errors:
        lines.append((logging.WARNING, f"pulse: {o.sender_errors} sender errors (last: {o.last_error})"))
    return lines


def _headline(o: Outcome) -> tuple[int, str]:
    points = f"{o.points_written:,} metric points"
    if o.start_refused:
        held = sum(b.points for b in o.refused)
        return logging.ERROR, (
            f"pulse: run {o.run_id} was NOT stored: the server refused its start ({o.start_refused}). Nothing of "
            f"it is in the store; its {len(o.refused):,} batches ({held:,} metric points) are kept in "
            f"{o.rejected_dir}" + _left(o) + _dropped(o, "; besides, "))
    if o.mode == "offline":
        return logging.WARNING, (f"pulse: run {o.run_id} ({o.state}) saved offline: {points} in {o.spool_dir}"
                                 + _dropped(o) + "; upload it with `pulse sync`")
    if o.stream_refused:
        return logging.ERROR, (
            f"pulse: run {o.run_id} ({o.state}) was not fully streamed: {o.stream_refused}. "
            f"{o.points_stored:,} metric points stored" + _dropped(o) + f"; {o.batches_left:,} batches "
            f"({o.points_left:,} points) stay in {o.spool_dir}; upload them with `pulse sync` once the other "
            "writer has ended")
    if not o.delivered:
        return logging.WARNING, (
            f"pulse: run {o.run_id} ended {o.state}, but {o.server} has not acknowledged all of it: "
            f"{o.points_stored:,} metric points stored" + _dropped(o) + f"; {o.batches_left:,} batches "
            f"({o.points_left:,} points, and the run's end) are in {o.spool_dir}; upload them with `pulse sync`")
    level = logging.WARNING if o.refused or any(o.dropped.values()) else logging.INFO
    return level, (f"pulse: run {o.run_id} {o.state}: {o.points_stored:,} metric points stored" + _dropped(o)
                   + f"; nothing left in the spool. {o.url}")


def _left(o: Outcome) -> str:
    if not o.batches_left:
        return ""
    return f"; {o.batches_left:,} more batches ({o.points_left:,} points) are in {o.spool_dir}"


def _dropped(o: Outcome, lead: str = ", ") -> str:
    dropped = {reason: n for reason, n in o.dropped.items() if n}
    if not dropped:
        return ", none dropped" if lead == ", " else ""
    parts = ", ".join(f"{n:,} {reason}" for reason, n in sorted(dropped.items(), key=lambda item: -item[1]))
    return f"{lead}{sum(dropped.values()):,} dropped ({parts})"
