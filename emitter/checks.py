"""What `init()` and `log()` refuse at the call, by the wire's own rules (pulse/limits.py).

The server would refuse the same things later, where a refusal costs more: a run name too
long loses the run's start (and with it every batch after), a float step loses its batch.
So `init()` raises `ValueError` naming the field, the limit and the value's size, and `log()`
drops only what is wrong (a bad step: the call; a bad key or value: that key) with a warning
naming key, type and reason, counted in `Refusals` (`run.stats()`, `finish()`'s line).

Example:
    check_init(project="mnist", run_id="a/b")   # ValueError: init(): run id 'a/b' contains '/'; ...
"""

from __future__ import annotations

import logging
import numbers
import operator
import threading
from typing import Any

from pulse.limits import (
    json_size_problem,
    key_problem,
    name_problem,
    notes_problem,
    run_id_problem,
    step_problem,
    tags_problem,
)

log = logging.getLogger("pulse")
KNOWN_KEYS_MAX = 100_000  # keys a run remembers as checked; past it the set starts over
_warned: set[str] = set()


class Error(Exception):
    """Base of the errors a W&B program catches as `wandb.Error` (the compat package's `wandb.errors`)."""

    def __init__(self, message: str = "", context: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class UsageError(Error):
    """The API was called in a way it does not support: `log()` after `finish()`, an unknown `reinit`."""


def warn_once(key: str, message: str) -> None:
    """Log `message` as a warning the first time `key` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", message)


def check_init(*, project: str, run_id: str, name: str = "", group: str = "", job_type: str = "",
               tags: Any = (), notes: str = "", config_json: str = "") -> None:
    """Raise ValueError for the first field of a run's start the server would refuse."""
    problem = (name_problem(project, "project") or run_id_problem(run_id)
               or (name and name_problem(name, "name")) or (group and name_problem(group, "group"))
               or (job_type and name_problem(job_type, "job_type")) or tags_problem(list(tags))
               or notes_problem(notes) or json_size_problem(config_json, "config"))
    if problem:
        raise ValueError(f"init(): {problem}")


_EDITABLE = {"name": lambda value: name_problem(value, "name"), "tags": tags_problem, "notes": notes_problem}


def check_edit(field: str, value: Any) -> None:
    """Raise ValueError when `run.<field> = value` (name, tags or notes) is what the server would refuse."""
    if problem := _EDITABLE[field](value):
        raise ValueError(f"run.{field} = ...: {problem}")


def check_config(config_json: str) -> None:
    """Raise ValueError when the run's whole config, as JSON, is past the server's limit."""
    if problem := json_size_problem(config_json, "config"):
        raise ValueError(f"config.update(): {problem}; this update is not sent to the server")


def as_step(step: Any) -> int | str:
    """The step as an int (3 and 3.0 alike, as W&B takes them), or why it is refused."""
    kind = type(step).__name__
    if kind in ("bool", "bool_"):
        return f"step {step!r} is a bool, not an integer"
    if isinstance(step, float) or (isinstance(step, numbers.Real) and not hasattr(step, "__index__")):
        value = float(step)
        if not value.is_integer():
            return f"step {step!r} ({kind}) is not a whole number"
        number = int(value)
    else:
        try:
            number = operator.index(step)  # int subclasses, numpy ints, 0-dim integer tensors
        except TypeError:
            return f"step {step!r} is a {kind}, not an integer"
    return step_problem(number) or number


class Refusals:
    """What log() refused and why: points per reason, keys with their first reason; warns sparingly.

    Written by the training thread (steps, keys) and the sender thread (values), so it locks; it
    is touched only when something is refused, never on the hot path.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.points: dict[str, int] = {}  # reason ("bad step", "bad key", "bad value") -> points dropped
        self.calls: dict[str, int] = {}  # reason -> log() calls dropped whole
        self.keys: dict[str, str] = {}  # key -> why it was dropped (first time)

    def call(self, reason: str, detail: str, data: dict) -> None:
        """A whole log() call dropped (its step is unusable)."""
        with self._lock:
            n = self.calls[reason] = self.calls.get(reason, 0) + 1
            self.points[reason] = self.points.get(reason, 0) + len(data)
        if n == 1:  # once per reason, as W&B warns of steps going back: a loop would repeat it forever
            keys = ", ".join(map(_shown, list(data)[:5])) + (", ..." if len(data) > 5 else "")
            log.warning("pulse: log() dropped this call (keys %s): %s. Later calls like it are dropped too, "
                        "counted in run.stats() and finish()", keys or "none", detail)

    def key(self, reason: str, key: Any, detail: str, points: int = 1) -> None:
        """`points` values of one key dropped."""
        name = key if isinstance(key, str) else repr(key)
        with self._lock:
            self.points[reason] = self.points.get(reason, 0) + points
            first = name not in self.keys
            if first:
                self.keys[name] = detail
        if first:
            log.warning("pulse: log() dropped key %s: %s", _shown(name), detail)

    def dropped(self) -> int:
        with self._lock:
            return sum(self.points.values())


class KeyCheck:
    """Keys a run has already found valid, so each key is checked once, not at every call."""

    def __init__(self, refusals: Refusals) -> None:
        self.known: set = set()
        self._refusals = refusals

    def filter(self, data: dict) -> dict:
        """`data` without its invalid keys (each refused with a warning); a copy when any is dropped."""
        if len(self.known) > KNOWN_KEYS_MAX:
            self.known.clear()  # keys made up per step (f"sample_{i}") must not grow this forever
        bad = []
        for key in data:
            if key in self.known:
                continue
            if problem := key_problem(key):
                bad.append((key, problem))
            else:
                self.known.add(key)
        if not bad:
            return data
        data = dict(data)
        for key, problem in bad:
            value = data.pop(key)
            self._refusals.key("bad key", key, f"{problem} (value of type {type(value).__name__})")
        return data


def _shown(key: Any) -> str:
    text = key if isinstance(key, str) else repr(key)
    return repr(text if len(text) <= 200 else text[:200] + "...")
