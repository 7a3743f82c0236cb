"""Process-wide hooks for live runs: interpreter exit, uncaught exceptions, sys.exit, fork, and a
sweep agent's environment and stop order (SIGTERM)."""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import weakref
from typing import Any

live_runs: weakref.WeakSet = weakref.WeakSet()  # runs started and not finished in this process
_hooks_lock = threading.Lock()
_hooks_installed = False


def install_process_hooks() -> None:
    """End live runs at interpreter exit (finished, or failed with the uncaught exception)."""
    global _hooks_installed
    with _hooks_lock:
        if _hooks_installed:
            return
        _hooks_installed = True
    previous_excepthook = sys.excepthook
    previous_exit = sys.exit

    def excepthook(kind, value, tb):
        for run in list(live_runs):
            run._exit = (1, f"{kind.__name__}: {value}")
        previous_excepthook(kind, value, tb)

    def exit_hook(code: Any = None):
        number = code if isinstance(code, int) else (0 if code is None else 1)
        for run in list(live_runs):
            if run._exit is None and number:
                run._exit = (number, f"exit code {number}" + (f": {code}" if not isinstance(code, int) else ""))
        previous_exit(code)

    def at_exit():
        for run in list(live_runs):
            run.finish()

    def in_child():
        for run in list(live_runs):
            run._after_fork_in_child()
        live_runs.clear()

    sys.excepthook = excepthook
    sys.exit = exit_hook
    atexit.register(at_exit)
    os.register_at_fork(after_in_child=in_child)


def sweep_environment() -> tuple[str, str, dict[str, Any] | None]:
    """(run id, sweep id, locked parameters) when started by a sweep agent."""
    params = os.environ.get("PULSE_SWEEP_PARAMS")
    return (os.environ.get("PULSE_RUN_ID", ""), os.environ.get("PULSE_SWEEP_ID", ""),
            json.loads(params) if params else None)


def sweep_project() -> str:
    """The sweep's project, set by the agent (PULSE_PROJECT)."""
    return os.environ.get("PULSE_PROJECT", "")


def end_run_on_sigterm() -> None:
    """Under a sweep agent, SIGTERM (a stop order) unwinds like Ctrl-C: the run flushes and ends `killed`."""
    import signal

    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt("stopped by the sweep agent (SIGTERM)")
