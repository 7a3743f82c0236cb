"""`pulse agent SWEEP_ID`: claim trials from the controller and run the sweep's program for each.

One trial at a time, or with `--gpus 0,1` one at a time per GPU, each with
CUDA_VISIBLE_DEVICES set to its GPU. Every few seconds the agent tells the
controller which trials are alive; a trial the controller wants stopped
(hyperband, a canceled sweep) gets SIGTERM, then SIGKILL after a grace
period, and its run ends `killed` with the reason. Like W&B's agent, it gives
up when the program keeps failing straight away: 3 failures within its first
60 s, or its first 5 trials all failed.

The command's ${interpreter} is the word `python`, as in W&B, so a trial runs
with the user's `python`; `--interpreter PATH` or PULSE_SWEEP_INTERPRETER
names another.

Example:
    pulse agent 3k9x2m1a --count 10 --gpus 0,1
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pulse.sweep_client import SweepClient, SweepError
from pulse.sweep_command import DEFAULT_INTERPRETER, build_command, needs_program

FLAPPING_S = 60.0
FLAPPING_FAILURES = 3


class GiveUp:
    """When an agent stops claiming trials because the program keeps failing (W&B's rule, both agents).

    PULSE_AGENT_MAX_INITIAL_FAILURES sets how many first trials may all fail (5);
    PULSE_AGENT_DISABLE_FLAPPING=true turns off the 3-failures-in-60-s check.
    """

    def __init__(self) -> None:
        self.max_initial_failures = int(os.environ.get("PULSE_AGENT_MAX_INITIAL_FAILURES", 5))
        self.flapping = os.environ.get("PULSE_AGENT_DISABLE_FLAPPING", "").lower() not in ("1", "true")
        self.started = time.monotonic()
        self.finished = self.failed = 0

    def ended(self, failed: bool) -> None:
        self.finished += 1
        self.failed += failed

    def reason(self) -> str:
        """Why to give up now, or ""."""
        if self.flapping and time.monotonic() - self.started < FLAPPING_S and self.failed >= FLAPPING_FAILURES:
            return f"{self.failed} trials failed within {FLAPPING_S:g} s of the agent's start"
        if self.finished >= self.max_initial_failures and self.failed == self.finished:
            return f"the first {self.finished} trials all failed"
        return ""


def report_trial(client: SweepClient, agent_id: str, trial, state: str, code: int, error: str) -> str:
    """Tell the controller a trial ended (`finished`, `failed` or `killed`); return the line to print."""
    ack = client.report(trial.sweep_id, trial.run_id, agent_id, state, code, error)
    value = f", objective {ack.objective:g}" if ack.has_objective else ""
    return f"trial {trial.seq} (run {trial.run_id}) ended {ack.run_state}{value}" + (f": {error}" if error else "")


def program_problem(config: dict) -> str:
    """Why this agent cannot run the sweep's trials, or ""."""
    if not needs_program(config.get("command")) or config.get("program"):
        return ""
    what = "a Launch job" if config.get("job") or config.get("image_uri") else "no program"
    return (f"the sweep has {what} for its command's ${{program}}: run its trials from Python with "
            "emitter.agent(sweep_id, function=train), or give the sweep a program")


@dataclass
class Running:
    process: subprocess.Popen
    stop_reason: str = ""
    stopped: threading.Event = field(default_factory=threading.Event)


class Agent:
    def __init__(self, client: SweepClient, sweep_id: str, count: int | None = None, gpus: list[str] | None = None,
                 kill_grace: float = 30.0, heartbeat: float = 5.0, workdir: Path | None = None,
                 interpreter: str | None = None) -> None:
        self.client = client
        self.sweep_id = sweep_id.rsplit("/", 1)[-1]  # W&B's entity/project/id works too
        self.count = count
        self.gpus: list[str | None] = list(gpus) if gpus else [None]
        self.kill_grace = kill_grace
        self.heartbeat_interval = heartbeat
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"pulse-agent-{self.sweep_id}-"))
        self.agent_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.interpreter = interpreter or os.environ.get("PULSE_SWEEP_INTERPRETER") or DEFAULT_INTERPRETER
        self.give_up = GiveUp()
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self._claimed = 0
        self._quit = threading.Event()
        self._slots_done = threading.Event()
        self._slots_left = 0
        self.gave_up = ""
        self.config: dict = {}

    def run(self) -> int:
        """Run trials until the sweep has none left, `count` is reached, or the program keeps failing."""
        try:
            sweep = self.client.get(self.sweep_id)
        except SweepError as exc:
            print(f"pulse agent: {exc}", file=sys.stderr)
            return 2
        self.config = json.loads(sweep.config_json)
        if problem := program_problem(self.config):
            print(f"pulse agent: sweep {self.sweep_id}: {problem}", file=sys.stderr)
            return 2
        self._say(f"sweep {self.sweep_id} ({sweep.state}) in project {sweep.project}; agent {self.agent_id}")
        beat = threading.Thread(target=self._heartbeats, name="pulse-agent-heartbeat", daemon=True)
        beat.start()
        self._slots_left = len(self.gpus)
        for gpu in self.gpus:
            threading.Thread(target=self._slot, args=(gpu,), name=f"pulse-agent-slot-{gpu}", daemon=True).start()
        try:
            # An Event, not Thread.join: a KeyboardInterrupt inside join() can leave the thread looking dead.
            while not self._slots_done.wait(0.5):
                pass
        except KeyboardInterrupt:
            self._say("interrupted: stopping the running trials")
            self._quit.set()
            self._stop_all("its agent was interrupted")
            self._slots_done.wait(self.kill_grace + 60)
            return 130
        finally:
            self._quit.set()
        if self.gave_up:
            print(f"pulse agent: giving up: {self.gave_up}", file=sys.stderr)
            return 1
        return 0

    # -- one slot: a GPU, or the whole machine ------------------------------------

    def _slot(self, gpu: str | None) -> None:
        try:
            self._trials(gpu)
        finally:
            with self._lock:
                self._slots_left -= 1
                if not self._slots_left:
                    self._slots_done.set()

    def _trials(self, gpu: str | None) -> None:
        try:
            while not self._quit.is_set():
                with self._lock:
                    if self.count is not None and self._claimed >= self.count:
                        return
                    self._claimed += 1
                answer = self.client.next_trial(self.sweep_id, self.agent_id, socket.gethostname(),
                                                claim_id=secrets.token_hex(8))
                if answer.done:
                    self._say(f"no more trials: {answer.reason}")
                    return
                if self._quit.is_set():  # interrupted while the claim was in flight: hand it back as killed
                    self._end(answer.trial, "killed", 0, "its agent stopped before the trial began")
                    return
                self._run_trial(answer.trial, gpu)
                if self._should_give_up():
                    self._quit.set()
        except SweepError as exc:
            print(f"pulse agent: {exc}", file=sys.stderr)
            self.gave_up = self.gave_up or f"the controller failed: {exc}"
            self._quit.set()

    def _run_trial(self, trial, gpu: str | None) -> None:
        params = json.loads(trial.params_json)
        argv = build_command(self.config.get("command"), self.config.get("program", ""), params,
                             self.workdir / f"{trial.run_id}.json", interpreter=self.interpreter)
        env = dict(os.environ, PULSE_SERVER=self.client.server, PULSE_PROJECT=trial.project,
                   PULSE_SWEEP_ID=trial.sweep_id, PULSE_RUN_ID=trial.run_id, PULSE_SWEEP_PARAMS=trial.params_json)
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        where = f" on GPU {gpu}" if gpu is not None else ""
        self._say(f"trial {trial.seq} (run {trial.run_id}){where}: {' '.join(argv)}")
        try:
            process = subprocess.Popen(argv, env=env, start_new_session=True)
        except OSError as exc:
            self._end(trial, "failed", 127, f"cannot start {argv[0]!r}: {exc}")
            return
        running = Running(process)
        with self._lock:
            self._running[trial.run_id] = running
        code = process.wait()
        running.stopped.set()
        with self._lock:
            self._running.pop(trial.run_id, None)
        if running.stop_reason:
            self._end(trial, "killed", code, running.stop_reason)
        elif code == 0:
            self._end(trial, "finished", 0, "")
        else:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            self._end(trial, "failed", code, f"the program {how}")

    def _end(self, trial, state: str, code: int, error: str) -> None:
        with self._lock:
            if state != "killed":
                self.give_up.ended(state == "failed")
        self._say(report_trial(self.client, self.agent_id, trial, state, code, error))

    def _should_give_up(self) -> bool:
        with self._lock:
            self.gave_up = self.gave_up or self.give_up.reason()
        return bool(self.gave_up)

    # -- heartbeats and stopping ---------------------------------------------------

    def _heartbeats(self) -> None:
        while not self._quit.wait(self.heartbeat_interval):
            with self._lock:
                run_ids = list(self._running)
            if not run_ids:
                continue
            try:
                answer = self.client.heartbeat(self.sweep_id, self.agent_id, run_ids)
            except SweepError as exc:
                self._say(f"heartbeat failed (will retry): {exc}")
                continue
            for order in answer.stop:
                self._stop(order.run_id, order.reason)

    def _stop_all(self, reason: str) -> None:
        with self._lock:
            run_ids = list(self._running)
        for run_id in run_ids:
            self._stop(run_id, reason)

    def _stop(self, run_id: str, reason: str) -> None:
        with self._lock:
            running = self._running.get(run_id)
            if running is None or running.stop_reason:
                return
            running.stop_reason = reason
        self._say(f"stopping run {run_id}: {reason}")
        _signal_group(running.process, signal.SIGTERM)
        threading.Thread(target=self._kill_later, args=(running,), daemon=True).start()

    def _kill_later(self, running: Running) -> None:
        if not running.stopped.wait(self.kill_grace):
            self._say(f"run still alive {self.kill_grace:g} s after SIGTERM: SIGKILL")
            _signal_group(running.process, signal.SIGKILL)

    def _say(self, text: str) -> None:
        print(f"pulse agent: {text}", flush=True)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    """Signal the trial and whatever it started (it leads its own process group)."""
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
