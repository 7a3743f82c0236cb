"""A run: what `emitter.init()` returns, and what `log`, `config` and `summary` act on."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
import urllib.parse
from typing import Any

from pulse.limits import MAX_STEP, batch_budget, key_problem, step_problem

from . import console, run_info
from .batcher import Batcher
from .checks import KeyCheck, Refusals, UsageError, as_step, check_config, check_edit, check_init
from .closing import Outcome, closing_lines
from .config import Config
from .encode import Encoder, config_json
from .media import split_media
from .process_hooks import live_runs
from .rejected import rejected_dir
from .run_artifacts import finish_artifacts
from .settings import Settings
from .spool import Spool
from .summary import MetricDefinition, StepSync, Summary, SummaryTracker
from .system import SystemMonitor
from .transport import Transport
from .values import PLAIN, expand, snapshot

log = logging.getLogger("pulse")
_ADJECTIVES = ("brisk", "calm", "dainty", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively",
               "misty", "noble", "proud", "quiet", "rapid", "silent", "swift", "vivid", "wise", "young")
_NOUNS = ("breeze", "brook", "cloud", "dawn", "dew", "field", "fire", "forest", "glade", "haze", "lake",
          "leaf", "meadow", "moon", "pine", "river", "sea", "sky", "star", "wave")


def new_run_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


class Run:
    """One training run. Create it with `emitter.init(...)`."""

    def __init__(self, settings: Settings, *, run_id: str | None = None, name: str | None = None,
                 group: str = "", job_type: str = "", tags: list[str] | None = None, notes: str = "",
                 config: Any = None, resume: bool = False, sweep_id: str = "", start_step: int = 0,
                 sweep_params: dict[str, Any] | None = None, max_batch_bytes: int = 0) -> None:
        """Raises ValueError for a field of the run's start the server would refuse (see
        pulse/limits.py): the message names the field, the limit and the value's size."""
        self.settings = settings
        self.project = settings.project
        self.id = run_id or new_run_id()
        # A resumed run keeps the name it has on the server unless a new one is given.
        self._name = name or ("" if resume else f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{self.id[:4]}")
        self.group, self.job_type, self._notes = group, job_type, notes
        self._tags = list(tags or [])
        self.sweep_id = sweep_id
        self.mode = settings.mode
        self.stream_id = f"{self.id}.{secrets.token_hex(6)}"
        self._step = start_step  # a resumed run continues after its last stored step
        self._pid = os.getpid()
        self._finished = self.mode == "disabled"  # nothing more to send (also in a forked child)
        self._disabled = self.mode == "disabled"
        self._ended = False  # finish() ran: log() and the like now raise UsageError, as in W&B
        self.refusals = Refusals()
        self._keys = KeyCheck(self.refusals)
        self._start_refused = ""  # why the server refused this run's start, if it did
        self._end_state = ""
        self._server_rejections = 0  # records the server refused within batches it stored
        self._exit: tuple[int, str] | None = None
        self.tracker = SummaryTracker()
        self._recent: dict[str, Any] = {}  # the last plain value of each key, kept by log() on the caller's thread
        self.summary = Summary(self.tracker, self._recent)
        self._step_sync: StepSync | None = None  # define_metric(step_sync=True) in force
        self.config = Config(on_change=self._config_changed)
        self.spool: Spool | None = None
        self.transport: Transport | None = None
        self._batcher: Batcher | None = None
        self._queue: Any = None
        self._monitor: SystemMonitor | None = None
        if sweep_params:
            self.config.lock(sweep_params)
        self.config.update(config)
        check_init(project=self.project, run_id=self.id, name=self._name, group=group, job_type=job_type,
                   tags=self._tags, notes=notes, config_json=config_json(self.config.as_dict()))
        if self._disabled:
            return
        self.spool = Spool(settings.dir / "spool" / self.stream_id, settings.spool_max_mb << 20)
        encoder = Encoder(self.project, self.id, self.stream_id, on_values=self.tracker.observe,
                          refusals=self.refusals)
        if self.mode == "online":
            self.transport = Transport(self.spool, settings.server, api_key=settings.api_key,
                                       route=f"{self.project}/{self.id}",
                                       tls_ca=settings.tls_ca, on_rejection=self._rejected)
        self._batcher = Batcher(encoder, self.spool, self.tracker, interval=settings.flush_interval,
                                heartbeat_interval=settings.heartbeat_interval,
                                max_values=settings.queue_max_values,
                                batch_bytes=batch_budget(max_batch_bytes))
        self._queue = self._batcher.queue
        self._queue.append(("start", run_info.with_metadata({
            "name": self._name, "group": group, "job_type": job_type, "tags": self._tags, "notes": notes,
            "config": self.config.as_dict(), "sweep_id": sweep_id, "created_at_us": time.time_ns() // 1000,
            "host": socket.gethostname(), "resume": bool(resume)})))
        if self.transport is not None:
            self.transport.start()
        if settings.system_interval > 0:
            self._monitor = SystemMonitor(self._enqueue, settings.system_interval).start()
        self._console = console.start(self)  # stdout/stderr teed to the run's `logs`
        live_runs.add(self)

    # -- the API --------------------------------------------------------------

    @property
    def url(self) -> str:
        query = urllib.parse.urlencode({"project": self.project, "run": self.id})
        return f"{self.settings.ui_url}/run?{query}"  # the run's own page

    @property
    def step(self) -> int:
        return self._step

    @property
    def name(self) -> str:
        """The run's display name; setting it stores the new name (`run.name = "baseline-2"`)."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._edit("name", value)

    @property
    def tags(self) -> list[str]:
        """The run's tags; setting them replaces the stored tags (`run.tags = ["a", "b"]`)."""
        return list(self._tags)

    @tags.setter
    def tags(self, value: Any) -> None:
        if isinstance(value, str) or not hasattr(value, "__iter__"):
            raise TypeError(f"run.tags takes a list of strings, not {type(value).__name__}")
        self._edit("tags", list(value))

    @property
    def notes(self) -> str:
        """The run's notes; setting them stores the new notes."""
        return self._notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._edit("notes", value)

    def log(self, data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """Record metrics at a step. Never blocks and never does I/O.

        Without `step`, values go to the current step, which then advances
        (unless `commit=False`). An explicit `step` may repeat (values merge
        into it) but never go backwards: such a call is dropped with a warning.
        A step is a non-negative int64; an integral float (3.0) counts as that
        int, as in W&B, anything else (2.5, True, "3") drops the call with a
        warning. A key the server would refuse (empty, over 512 bytes, control
        characters, not a string) drops only that key, with a warning; so does
        a value that is not a scalar (on the sender thread). Each refusal is
        counted in `run.stats()` and in `finish()`'s closing line.

        As in W&B, a nested dict becomes dotted keys (`{"train": {"loss": x}}` is
        `train.loss`), a list or array of numbers a Histogram, and a call after
        `finish()` raises UsageError.

        Example:
            run.log({"loss": 0.25, "acc": 0.91})
            run.log({"val/loss": 0.3}, step=100)
        """
        if self._disabled:
            self._refuse_if_ended("log()")
            return
        if type(data) is not dict:
            data = _as_dict(data)
        if step is None:
            step = self._step
            advance = commit is not False
            if step > MAX_STEP:  # the run logged at int64's last step, then advanced past it
                self.refusals.call("bad step", step_problem(step), data)
                return
        else:
            if type(step) is not int or not 0 <= step <= MAX_STEP:
                step = as_step(step)
                if type(step) is str:
                    self.refusals.call("bad step", step, data)
                    return
            if step < self._step:
                self.refusals.call("earlier step", f"step {step} is below the current step {self._step}; "
                                   "steps must not go backwards", data)
                return
            self._step = step
            advance = commit is True
        plain = PLAIN.issuperset(map(type, data.values()))
        if not plain:
            data = expand(data)  # a new dict
        if not self._keys.known.issuperset(data):  # each key is checked once per run
            data = self._keys.filter(data)
        values = data.copy() if plain else data
        ts = time.time_ns() // 1000
        if self._step_sync is not None:
            self._step_sync.fill(values)
        if plain:
            self._recent.update(values)  # what run.summary reads before the sender has seen it
        else:
            self._recent.update({k: v for k, v in values.items() if type(v) in PLAIN})
            values = snapshot(values)
            for item in split_media(values, step, ts):  # Image, Histogram: encoded by the sender
                self._queue.append(("deferred", item))
        record = (step, ts, values)
        batcher = self._batcher
        if batcher.appended_values - batcher.drained_values < batcher.max_values:
            batcher.appended_values += len(values)
            self._queue.append(record)
        else:
            batcher.overflow(record)
        if advance:
            self._step = step + 1

    def define_metric(self, name: str, step_metric: str | None = None, summary: str | None = None,
                      goal: str | None = None, hidden: bool = False, step_sync: bool | None = None,
                      overwrite: bool | None = None, **_: Any) -> MetricDefinition:
        """Say how a metric (or a glob such as `val/*`) is summarised and plotted; W&B's rules:

        an exact name beats a glob, and among globs the last defined wins; defining a name again
        adds to its definition unless `overwrite=True`. With a `step_metric`, `step_sync` (on
        unless False) adds the step metric's last value to a logged row that lacks it.

        Example:
            run.define_metric("val/loss", summary="min", goal="minimize")
            run.define_metric("val/*", step_metric="epoch")
        """
        self._refuse_if_ended("define_metric()")
        if problem := key_problem(name) or (step_metric and key_problem(step_metric)):
            raise ValueError(f"define_metric(): {problem}")
        goal = {"min": "minimize", "max": "maximize"}.get(goal or "", goal or "")
        step_sync = bool(step_metric) if step_sync is None else bool(step_sync and step_metric)
        definition = self.tracker.define(MetricDefinition(name, step_metric or "", summary or "", goal,
                                                          bool(hidden), step_sync), overwrite=bool(overwrite))
        if self._step_sync is None and step_sync:
            self._step_sync = StepSync(self.tracker)
        if self._step_sync is not None:
            self._step_sync.refresh()
        self._enqueue("metric", {"name": name, "step_metric": definition.step_metric,
                                 "summary": definition.summary, "goal": definition.goal,
                                 "hidden": definition.hidden})
        return definition

    def alert(self, title: str, text: str, level: str = "INFO") -> None:
        """Record an alert for this run. Example: `run.alert("NaN loss", "step 120", "ERROR")`."""
        self._refuse_if_ended("alert()")
        level = str(getattr(level, "value", level)).upper()
        if level not in ("INFO", "WARN", "ERROR"):
            raise ValueError(f"level must be INFO, WARN or ERROR, not {level!r}")
        self._enqueue("alert", {"ts_us": time.time_ns() // 1000, "level": level, "title": title,
                                "text": text})

    def log_artifact(self, artifact_or_path: Any, name: str | None = None, type: str | None = None,
                     aliases: list[str] | None = None, tags: list[str] | None = None) -> Any:
        """Log an `emitter.Artifact` (or a file or directory path) as this run's output; uploads in the background.

        Example: `run.log_artifact(artifact, aliases=["best"])`; `artifact.wait().version` is then "v0", "v1", ...
        """
        from .run_artifacts import log_artifact

        return log_artifact(self, artifact_or_path, name=name, type=type, aliases=aliases, tags=tags)

    def use_artifact(self, artifact_or_name: Any, type: str | None = None, aliases: list[str] | None = None,
                     use_as: str | None = None) -> Any:
        """An artifact version ("name:latest", "name:v3", "project/name:best") recorded as this run's input."""
        from .run_artifacts import use_artifact

        return use_artifact(self, artifact_or_name, type=type, aliases=aliases, use_as=use_as)

    def save(self, glob_str: Any, base_path: Any = None, policy: str = "live") -> list[str]:
        """Store files matching `glob_str` with the run (W&B's `wandb.save`; policy "live", "now" or "end")."""
        from .run_artifacts import save

        return save(self, glob_str, base_path=base_path, policy=policy)

    def finish(self, exit_code: int | None = None, quiet: bool = False) -> None:
        """End the run: flush, wait for the server's acks (up to the finish timeout), close.

        What the server did not acknowledge stays in the spool for `pulse sync`. Afterwards
        `emitter.run` is None (when it was this run) and `log()` raises UsageError.
        """
        if self._ended or os.getpid() != self._pid:
            return
        self._ended = True
        try:
            if not self._finished:  # a disabled run has nothing to send
                self._end(exit_code, quiet)
        finally:
            from . import _run_ended  # the package, loaded by now

            _run_ended(self)

    def _end(self, exit_code: int | None, quiet: bool) -> None:
        self._finished = True
        self._disabled = True
        code, error = self._exit or (exit_code or 0, "")
        state = "finished" if code == 0 and not error else "failed"
        if error.startswith("KeyboardInterrupt"):
            state = "killed"
        self._end_state = state
        deadline = time.monotonic() + self.settings.finish_timeout
        if self._monitor is not None:
            self._monitor.stop()
        if getattr(self, "_console", None) is not None:
            self._console.stop()
        batcher = self._batcher
        batcher.flush(_left(deadline))
        self._queue.append(("summary", self.tracker.result()))
        self._queue.append(("finish", {"state": state, "exit_code": code, "error": error,
                                       "ts_us": time.time_ns() // 1000}))
        batcher.stop(_left(deadline))
        delivered = self.transport.close(_left(deadline)) if self.transport else False
        finish_artifacts(self, _left(deadline))
        self.spool.close(remove_if_empty=True)
        live_runs.discard(self)
        self._report(delivered, quiet)

    def is_live(self) -> bool:
        """Whether this run takes data: started in this process and not finished."""
        return not self._ended and os.getpid() == self._pid

    # -- internals ------------------------------------------------------------

    def _enqueue(self, kind: str, payload: Any) -> None:
        if not self._disabled:
            self._queue.append((kind, payload))

    def _refuse_if_ended(self, call: str) -> None:
        """W&B's rule: a finished run takes nothing more."""
        if self._ended:
            raise UsageError(f"Run ({self.id}) is finished: {call} needs an active run (emitter.init() starts one)")

    def _edit(self, field: str, value: Any) -> None:
        """`run.name/tags/notes = ...`: checked as init() checks them, then sent as the run's new metadata."""
        self._refuse_if_ended(f"the run.{field} setter")
        check_edit(field, value)
        setattr(self, f"_{field}", value)
        self._enqueue("update", {field: value})

    def _config_changed(self, items: dict[str, Any]) -> None:
        if self._queue is not None and not self._disabled:
            check_config(config_json(items))
            self._enqueue("config", items)

    def _rejected(self, rejection) -> None:
        """A record of a batch the server stored was refused (or, what="batch", the whole batch)."""
        if rejection.what.endswith(".start"):
            self._start_refused = rejection.reason
            log.error("pulse: the server REFUSED the start of run %s: %s. None of the run's data can be "
                      "stored; it is kept on disk (see finish()).", self.id, rejection.reason)
            return
        if rejection.what == "batch":
            return  # the transport sets the batch aside and reports it
        self._server_rejections += 1
        if self._server_rejections <= 10:
            log.warning("pulse: the server rejected %s: %s", rejection.what, rejection.reason)

    def _report(self, delivered: bool, quiet: bool) -> None:
        for level, line in closing_lines(self._outcome(delivered)):
            if level > logging.INFO or not quiet:
                log.log(level, "%s", line)

    def _outcome(self, delivered: bool) -> Outcome:
        b, t, spool = self._batcher, self.transport, self.spool
        dropped = dict(self.refusals.points)
        dropped["spool full"] = b.dropped_points
        dropped["disk full"] = self._disk_dropped_points()  # or a quota, or an I/O error: never written
        return Outcome(
            run_id=self.id, state=self._end_state, mode=self.mode, server=self.settings.server,
            url=self.url, spool_dir=spool.directory, rejected_dir=rejected_dir(spool.directory),
            delivered=delivered, points_written=b.points_written, points_left=b.points_after(spool.acked),
            batches_left=spool.pending, refused=list(t.refused_batches) if t else [],
            start_refused=self._start_refused, stream_refused=t.refused if t else "", dropped=dropped,
            dropped_records=b.dropped_records, unwritten_batches=getattr(spool, "dropped_records", 0),
            server_rejections=self._server_rejections, sender_errors=b.errors, last_error=b.last_error)

    def stats(self) -> dict[str, Any]:
        """Counters for diagnosis (and tests).

        `dropped` counts metric points never sent, by reason ("bad step", "earlier step",
        "bad key", "bad value"); `refused_calls` the log() calls dropped whole, by reason;
        `rejected_keys` each key dropped, with its first reason; `disk_dropped_points` the points a
        refusing disk (full, quota, I/O error) dropped from the spool and the overflow file, whose
        failed writes `spool_write_failures` and `overflow_write_failures` count.
        """
        b, t = self._batcher, self.transport
        return {"step": self._step, "backwards_dropped": self.refusals.calls.get("earlier step", 0),
                "batches": b.batches if b else 0, "sender_errors": b.errors if b else 0,
                "overflowed": b.overflowed if b else 0, "dropped_points": b.dropped_points if b else 0,
                "dropped_records": b.dropped_records if b else 0,
                "dropped": {reason: n for reason, n in self.refusals.points.items() if n},
                "refused_calls": dict(self.refusals.calls),
                "rejected_keys": dict(self.refusals.keys),
                "points_written": b.points_written if b else 0,
                "refused_batches": len(t.refused_batches) if t else 0,
                "disk_dropped_points": self._disk_dropped_points(),
                "spool_write_failures": self.spool.write_failures if self.spool else 0,
                "overflow_write_failures": b.spilled.write_failures if b else 0,
                "start_refused": self._start_refused,
                "pending_batches": self.spool.pending if self.spool else 0}

    def _disk_dropped_points(self) -> int:
        """Metric points a refusing disk dropped: in batches for the spool, and in spilled log() calls."""
        b = self._batcher
        return b.disk_dropped_points + b.spilled.dropped_points if b else 0

    def _after_fork_in_child(self) -> None:
        self._disabled = True
        self._finished = True
        if self._batcher is not None:
            self._batcher.abandon()
        if self.spool is not None:
            self.spool.abandon()

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.id} ({self.name})>"

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self._exit = (1, f"{kind.__name__}: {value}")
        self.finish()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _as_dict(data: Any) -> dict:
    try:
        return dict(data)
    except (TypeError, ValueError):
        raise TypeError(f"log() takes a dict of metrics, not {type(data).__name__}") from None
