"""Console capture: the run's stdout and stderr, teed to the `logs` table as W&B does.

`start(run)` puts a tee in front of `sys.stdout` and `sys.stderr`: everything written still goes
where it went before (the user sees their output unchanged), and every complete line is also
queued for the run as a console record, which the sender encodes into `Batch.console` (one line
per `ConsoleLine`, numbered from 1 across both streams). What Python code writes is captured
(print, logging, tracebacks); output of C code and child processes writing to the file
descriptors directly is not. Lines longer than MAX_LINE_CHARS are cut, with a mark.

Turned off with PULSE_CONSOLE=off, or `init(settings={"console": "off"})` (W&B's `console="off"`).
`log()` never passes through here.

Example:
    capture = start(run)      # from Run.__init__
    print("epoch 1")          # on the terminal, and a line of the run's console
    capture.stop()            # from Run.finish: the streams are put back
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from typing import Any

from pulse.v1 import telemetry_pb2 as pb

MODES = ("wrap", "off")
MAX_LINE_CHARS = 4000  # the ingest refuses lines over 16 KiB of UTF-8; 4 bytes a character at most
CUT_MARK = " …[cut]"


def console_setting(settings: Any) -> str | None:
    """The `console` of W&B-style init settings (a dict or an object with a `console` attribute)."""
    value = settings.get("console") if isinstance(settings, dict) else getattr(settings, "console", None)
    if value in (None, "auto", "redirect", "wrap_raw", "wrap_emu"):  # W&B's other names for capturing
        return "wrap" if value else None
    return str(value)


class ConsoleLines:
    """A queued console record: lines the sender writes into the batch (the encoder's `deferred` items)."""

    __slots__ = ("lines", "weight", "key")

    def __init__(self, lines: list[tuple[int, str, int, str]]) -> None:
        self.lines = lines
        self.weight = 1 + sum(len(text) for *_, text in lines) // 64  # a batch stays under its byte budget
        self.key = "console"  # what a refusal names

    def encode(self, batch: pb.Batch) -> None:
        batch.console.extend(pb.ConsoleLine(ts_us=ts, stream=stream, line_no=n, text=text)
                             for ts, stream, n, text in self.lines)
        return None


class Capture:
    """The tees on stdout and stderr of one run."""

    def __init__(self, run: Any) -> None:
        self._run = run
        self._pid = os.getpid()  # a forked child (a DataLoader worker) passes its output through only
        self._open = True
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._guard = threading.local()  # a write made while queueing (a warning) is not captured again
        # A stream that is None (pythonw, some services) stays None: there is nothing to tee.
        self._tees = {name: _Tee(getattr(sys, name), name, self) for name in ("stdout", "stderr")
                      if getattr(sys, name) is not None}
        for name, tee in self._tees.items():
            setattr(sys, name, tee)

    def stop(self) -> None:
        """Queue what is left of unfinished lines and put the streams back (when still ours)."""
        for name, tee in self._tees.items():
            tee.flush_line()
            if getattr(sys, name) is tee:
                setattr(sys, name, tee.target)
            tee.capture = None
        self._open = False

    def lines(self, stream: str, texts: list[str]) -> None:
        if getattr(self._guard, "busy", False) or not self._open or os.getpid() != self._pid:
            return
        self._guard.busy = True
        try:
            now = time.time_ns() // 1000
            with self._lock:
                numbered = [(now, stream, next(self._numbers), _cut(text)) for text in texts]
            # Straight onto the run's queue: finish() stops the capture after it closed the run to
            # log(), and the last unfinished line still belongs to the run.
            self._run._queue.append(("deferred", ConsoleLines(numbered)))
        finally:
            self._guard.busy = False


class _Tee:
    """A text stream that writes through to `target` and hands complete lines to the capture."""

    def __init__(self, target: Any, stream: str, capture: Capture) -> None:
        self.target = target
        self.stream = stream
        self.capture: Capture | None = capture
        self._partial = ""
        self._cut = False  # the last line was handed over unfinished (too long): its newline ends nothing
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        written = self.target.write(text)
        capture = self.capture
        if capture is not None and isinstance(text, str) and text:
            with self._lock:
                pending = self._partial + text
                *complete, self._partial = pending.replace("\r\n", "\n").split("\n")
                if self._cut and complete and complete[0] == "":
                    complete.pop(0)
                self._cut = False
                if len(self._partial) > MAX_LINE_CHARS:  # a progress bar without newlines
                    complete.append(self._partial)
                    self._partial, self._cut = "", True
            if complete:
                capture.lines(self.stream, [line.rsplit("\r", 1)[-1] for line in complete])
        return written

    def flush_line(self) -> None:
        with self._lock:
            rest, self._partial = self._partial, ""
        if rest and self.capture is not None:
            self.capture.lines(self.stream, [rest])

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.target.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, buffer...: the real stream's
        return getattr(self.target, name)


def start(run: Any) -> Capture | None:
    """Capture the run's console unless its settings say off; None when off."""
    mode = getattr(run.settings, "console", "wrap") or "wrap"
    if mode not in MODES:  # said once, and the run goes on capturing: init() is past the point of refusing
        logging.getLogger("pulse").warning("pulse: console=%r (PULSE_CONSOLE) is not one of %s; capturing the "
                                           "console as with 'wrap'", mode, MODES)
        mode = "wrap"
    return Capture(run) if mode == "wrap" else None


def _cut(text: str) -> str:
    return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS - len(CUT_MARK)] + CUT_MARK
