"""`emitter.sweep()` and `emitter.agent()`: run W&B-format sweeps from Python, as `wandb.sweep`/`wandb.agent`.

Example:
    import emitter

    def train():
        run = emitter.init()                     # the trial's parameters are in run.config, locked
        for epoch in range(run.config.epochs):
            emitter.log({"loss": 1.0 / (epoch + 1) + run.config.lr})

    sweep_id = emitter.sweep({"method": "random", "metric": {"name": "loss"},
                              "parameters": {"lr": {"min": 0.0001, "max": 0.1}, "epochs": {"value": 5}}},
                             project="mnist")
    emitter.agent(sweep_id, function=train, count=10)

With `function`, the agent runs trials in this process one after another, as
W&B's function agent (wandb/wandb `wandb/agents/pyagent.py`) does: for each
trial it sets the sweep's environment (PULSE_SWEEP_ID, PULSE_RUN_ID,
PULSE_SWEEP_PARAMS, PULSE_PROJECT), calls `function` in a thread of its own,
and finishes the trial's run when `function` returns or raises. The
`emitter.init()` inside `function` therefore starts the trial's run, in the
sweep's project, with the trial's parameters merged into its config and
locked. A trial the controller stops (hyperband, a canceled sweep) gets
`TrialStopped` raised in its thread. Such agents and `pulse agent` processes
can serve the same sweep: every trial is claimed from the controller in the
ingest, so a grid point is never run twice.

This module imports only the standard library at import time; the wire
client (grpc and protobuf) is imported when a function is called.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

SWEEP_ENV = ("PULSE_PROJECT", "PULSE_SWEEP_ID", "PULSE_RUN_ID", "PULSE_SWEEP_PARAMS", "PULSE_SERVER")
STOP_WAIT_S = 30.0  # after an interrupt, how long the trial's thread may take to unwind


class TrialStopped(BaseException):
    """Raised inside a trial's function when the controller stops the trial.

    A BaseException, so that a training loop's `except Exception` does not
    swallow it (W&B raises a plain Exception there).
    """


def sweep(sweep: dict | Callable[[], dict], entity: str | None = None, project: str | None = None,
          prior_runs: list[str] | None = None) -> str:
    """Register a sweep (a W&B sweep config as a dict) and return its id, as `wandb.sweep` does.

    The project is `project`, else the config's `project`, else $PULSE_PROJECT.
    `entity` is accepted and ignored. Raises ValueError naming every problem of
    an invalid config.

    Example:
        sweep_id = emitter.sweep({"method": "grid", "parameters": {"lr": {"values": [0.1, 0.01]}}}, project="p")
    """
    from pulse.sweep_client import SweepClient

    config = sweep() if callable(sweep) else sweep
    if not isinstance(config, dict):
        raise TypeError(f"sweep() takes a sweep config as a dict, not {type(config).__name__}")
    if prior_runs:
        raise ValueError("Pulse cannot add earlier runs to a sweep (prior_runs)")
    project = project or config.get("project") or os.environ.get("PULSE_PROJECT", "")
    client = SweepClient(retry_for=10.0)
    try:
        created = _call(client.create, project if isinstance(project, str) else "", config)
    finally:
        client.close()
    print(f"pulse: created sweep {created.sweep_id} in project {created.project}", flush=True)
    return created.sweep_id


def agent(sweep_id: str, function: Callable[[], Any] | None = None, entity: str | None = None,
          project: str | None = None, count: int | None = None) -> None:
    """Run the sweep's trials here until it has none left or `count` trials were run, as `wandb.agent`.

    With `function`, each trial calls it in this process; without, each trial
    runs the sweep's program as `pulse agent` does. `sweep_id` may be
    "project/id" or "entity/project/id"; a project that is not the sweep's is
    an error. `entity` is accepted and ignored. Ctrl-C stops the running trial
    (its run ends `killed`) and returns.

    Example:
        emitter.agent(sweep_id, function=train, count=5)
    """
    from pulse.sweep_client import SweepClient

    parts = sweep_id.split("/")
    if not 1 <= len(parts) <= 3 or not parts[-1]:
        raise ValueError(f"sweep_id must be ID, project/ID or entity/project/ID, not {sweep_id!r}")
    project = (parts[-2] if len(parts) > 1 else "") or project
    if function is not None and not callable(function):
        raise TypeError("function must be callable")
    client = SweepClient()
    try:
        found = _call(client.get, parts[-1])
        if project and project != found.project:
            raise ValueError(f"sweep {found.sweep_id} is in project {found.project!r}, not {project!r}")
        if function is None:
            from pulse.agent import Agent, program_problem

            if problem := program_problem(json.loads(found.config_json)):
                raise ValueError(f"sweep {found.sweep_id}: {problem}")
            Agent(client, found.sweep_id, count=count).run()
        else:
            FunctionAgent(client, found.sweep_id, function, count).run()
    finally:
        client.close()


def _call(method: Callable, *args: Any):
    """A sweep RPC; a config or id the server refuses becomes a ValueError with the server's words."""
    import grpc

    from pulse.sweep_client import SweepError

    try:
        return method(*args)
    except SweepError as exc:
        if exc.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
            raise ValueError(str(exc)) from None
        raise


class FunctionAgent:
    """Claims trials one at a time and runs `function` for each, in this process."""

    def __init__(self, client: Any, sweep_id: str, function: Callable[[], Any], count: int | None = None,
                 heartbeat: float | None = None) -> None:
        from pulse.agent import GiveUp

        self.client = client
        self.sweep_id = sweep_id
        self.function = function
        self.count = count
        self.heartbeat_interval = heartbeat or float(os.environ.get("PULSE_AGENT_HEARTBEAT", 5.0))
        self.agent_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.give_up = GiveUp()
        self._current: tuple[str, TrialThread] | None = None
        self._quit = threading.Event()

    def run(self) -> None:
        beat = threading.Thread(target=self._heartbeats, name="pulse-agent-heartbeat", daemon=True)
        beat.start()
        claimed = 0
        try:
            while self.count is None or claimed < self.count:
                answer = self.client.next_trial(self.sweep_id, self.agent_id, socket.gethostname(),
                                                claim_id=secrets.token_hex(8))
                claimed += 1
                if answer.done:
                    _say(f"no more trials: {answer.reason}")
                    return
                self._run_trial(answer.trial)
                if why := self.give_up.reason():
                    _say(f"giving up: {why}")
                    return
        except KeyboardInterrupt:
            _say("interrupted: the sweep agent stops")
        finally:
            self._quit.set()

    def _run_trial(self, trial: Any) -> None:
        params = json.loads(trial.params_json)
        _say(f"trial {trial.seq} (run {trial.run_id}): {params}")
        saved = {name: os.environ.get(name) for name in SWEEP_ENV}
        os.environ.update(PULSE_PROJECT=trial.project, PULSE_SWEEP_ID=trial.sweep_id, PULSE_RUN_ID=trial.run_id,
                          PULSE_SWEEP_PARAMS=trial.params_json, PULSE_SERVER=self.client.server)
        worker = TrialThread(self.function, trial.run_id)
        self._current = (trial.run_id, worker)
        try:
            worker.start()
            while worker.is_alive():
                worker.join(0.2)  # a timed join, so Ctrl-C reaches this thread
        except KeyboardInterrupt:
            worker.stop("its agent was interrupted")
            worker.join(STOP_WAIT_S)
            self._report(trial, worker)
            raise
        finally:
            self._current = None
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        self._report(trial, worker)

    def _report(self, trial: Any, worker: TrialThread) -> None:
        if worker.stop_reason:
            state, code, error = "killed", 1, worker.stop_reason
        elif worker.error is not None:
            state, code, error = "failed", 1, f"{type(worker.error).__name__}: {worker.error}"
        else:
            state, code, error = "finished", 0, ""
        if state != "killed":
            self.give_up.ended(state == "failed")
        from pulse.agent import report_trial

        _say(report_trial(self.client, self.agent_id, trial, state, code, error))

    def _heartbeats(self) -> None:
        from pulse.sweep_client import SweepError

        while not self._quit.wait(self.heartbeat_interval):
            current = self._current
            if current is None:
                continue
            run_id, worker = current
            try:
                answer = self.client.heartbeat(self.sweep_id, self.agent_id, [run_id])
            except SweepError as exc:
                _say(f"heartbeat failed (will retry): {exc}")
                continue
            for order in answer.stop:
                if order.run_id == run_id:
                    _say(f"stopping run {run_id}: {order.reason}")
                    worker.stop(order.reason)


class TrialThread(threading.Thread):
    """One trial: the user's function, then the end of the trial's run."""

    def __init__(self, function: Callable[[], Any], run_id: str) -> None:
        super().__init__(name=f"pulse-trial-{run_id}", daemon=True)
        self.function = function
        self.run_id = run_id
        self.error: BaseException | None = None
        self.stop_reason = ""
        self._lock = threading.Lock()
        self._in_function = False

    def run(self) -> None:
        with self._lock:
            self._in_function = not self.stop_reason  # stopped before it began: never call it
        try:
            try:
                if self._in_function:
                    self.function()
            finally:
                self._leave()
        except TrialStopped:
            pass  # stop_reason says why
        except BaseException as exc:  # the trial failed; the agent goes on, as W&B's does
            self.error = exc
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        self._finish_run()

    def stop(self, reason: str) -> None:
        """Raise TrialStopped in the function (once). Like W&B's, it lands at the next Python line the
        thread runs: a function blocked in C code (a long sleep, a read) sees it when that returns."""
        with self._lock:
            if self.stop_reason:
                return
            self.stop_reason = reason
            if self._in_function and self.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), ctypes.py_object(TrialStopped))

    def _leave(self) -> None:
        with self._lock:
            self._in_function = False
            if self.stop_reason and self.ident is not None:  # a stop that arrived as the function returned
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), None)

    def _finish_run(self) -> None:
        """End the trial's run if the function left it open: finished, or failed with the exception."""
        import emitter

        run = emitter.run
        if run is None or run.id != self.run_id:
            return
        if self.error is not None or self.stop_reason:
            error = self.error or TrialStopped(self.stop_reason)
            run.__exit__(type(error), error, error.__traceback__)
        emitter.finish()


def _say(text: str) -> None:
    print(f"pulse agent: {text}", flush=True)
