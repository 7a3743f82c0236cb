"""The sweep controller: one per ingest, the only writer of sweep state.

Claims of one sweep are serialised by that sweep's lock and written to
`sweep_trials` before the agent hears of them, so no two agents ever get the
same grid point and a restarted ingest (which reloads a sweep's rows on first
use) never issues a finished point again.

Example:
    controller = SweepController(store, RunSettler(registry, buffers))
    sweep = controller.create("mnist", {"program": "train.py", "method": "grid", ...})
    trial, reason = controller.next_trial(sweep.row.sweep_id, agent_id="a1", host="gpu-3", claim_id="c1")
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from ..storage import Store
from ..validate import name_problem
from .config import SweepConfig, SweepConfigError, parse_sweep
from .hyperband import hyperband_stops
from .impute import bayes_observations
from .search import Observation, flatten, nest, next_params
from .settle import RunSettler
from .state import (
    LIVE,
    SweepRow,
    Trial,
    metric_histories,
    now_us,
    objective,
    params_of,
    read_sweep,
    read_trials,
    run_summaries,
    write_sweep,
    write_trial,
)

STATES = ("running", "finished", "stopped", "canceled")
DEFAULT_PROJECT = "uncategorized"
TRIAL_TIMEOUT_S = 300.0  # a running trial whose agent is silent this long is marked crashed
HYPERBAND_EVERY_S = 1.0


class UnknownSweep(LookupError):
    pass


@dataclass
class LiveSweep:
    row: SweepRow
    config: SweepConfig
    trials: dict[str, Trial] = field(default_factory=dict)  # run id -> trial, in issue order
    lock: threading.Lock = field(default_factory=threading.Lock)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    checked_hyperband: float = 0.0

    @property
    def running(self) -> list[Trial]:
        return [t for t in self.trials.values() if t.running]


def new_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(8))


class SweepController:
    def __init__(self, store: Store, settler: RunSettler, trial_timeout: float = TRIAL_TIMEOUT_S) -> None:
        self._store = store
        self._settler = settler
        self._trial_timeout = trial_timeout
        self._sweeps: dict[str, LiveSweep] = {}
        self._lock = threading.Lock()

    # -- sweeps ---------------------------------------------------------------

    def create(self, project: str, raw: dict) -> LiveSweep:
        """Validate and register a sweep; SweepConfigError names every problem."""
        config = parse_sweep(raw)
        project = project or config.project or DEFAULT_PROJECT
        if problem := name_problem(project, "project"):
            raise SweepConfigError([problem])
        with self._lock:
            sweep_id = new_id()
            while sweep_id in self._sweeps or read_sweep(self._store, sweep_id):
                sweep_id = new_id()
            stamp = now_us()
            row = SweepRow(project, sweep_id, json.dumps(raw), "running", stamp, stamp)
            write_sweep(self._store, row)
            sweep = self._sweeps[sweep_id] = LiveSweep(row, config)
        return sweep

    def get(self, sweep_id: str) -> LiveSweep:
        with self._lock:
            sweep = self._sweeps.get(sweep_id)
            if sweep is None:
                row = read_sweep(self._store, sweep_id)
                if row is None:
                    raise UnknownSweep(f"no sweep {sweep_id!r}")
                sweep = LiveSweep(row, parse_sweep(json.loads(row.config)))
                seen = time.monotonic()  # trials left running get a full timeout to be heard from again
                for trial in read_trials(self._store, sweep_id):
                    trial.last_seen = seen
                    sweep.trials[trial.run_id] = trial
                self._sweeps[sweep_id] = sweep
        return sweep

    def set_state(self, sweep_id: str, state: str) -> LiveSweep:
        """`stopped`: no new trials. `canceled`: no new trials, and running ones are stopped."""
        sweep = self.get(sweep_id)
        with sweep.lock:
            if sweep.row.state in ("running", "stopped") and state != sweep.row.state:
                self._set_state(sweep, state)
        return sweep

    def _set_state(self, sweep: LiveSweep, state: str) -> None:
        sweep.row.state = state
        sweep.row.updated_at = max(now_us(), sweep.row.updated_at + 1)
        write_sweep(self._store, sweep.row)

    # -- trials ---------------------------------------------------------------

    def next_trial(self, sweep_id: str, agent_id: str, host: str, claim_id: str) -> tuple[Trial | None, str]:
        """(the claimed trial, "") or (None, why there is none and never will be)."""
        sweep = self.get(sweep_id)
        with sweep.lock:
            if claim_id:
                for trial in sweep.trials.values():
                    if trial.claim_id == claim_id:
                        return trial, ""  # the agent retried a claim whose answer it lost
            self._expire(sweep)
            self._check_done(sweep)
            why = self._why_no_more(sweep)
            if sweep.row.state != "running":
                return None, f"sweep {sweep_id} is {sweep.row.state}" + (f" ({why})" if why else "")
            if why:
                return None, why
            config = sweep.config
            issued = {t.grid_index for t in sweep.trials.values() if t.grid_index >= 0}
            found = next_params(config, self._observations(sweep), issued, sweep.rng)
            if found is None:
                return None, f"all {config.grid_size} grid points were issued"
            flat, grid_index = found
            run_id = new_id()
            while run_id in sweep.trials:
                run_id = new_id()
            trial = Trial(sweep.row.project, sweep_id, run_id, len(sweep.trials) + 1, grid_index,
                          json.dumps(nest(flat, config.params)), agent_id=agent_id, host=host, claim_id=claim_id,
                          claimed_at=now_us(), last_seen=time.monotonic())
            write_trial(self._store, trial)  # persisted before anyone hears of it
            sweep.trials[run_id] = trial
            return trial, ""

    def heartbeat(self, sweep_id: str, run_ids: list[str]) -> dict[str, str]:
        """Note the agent's running trials alive; return {run id: reason} for those to stop."""
        sweep = self.get(sweep_id)
        with sweep.lock:
            seen = time.monotonic()
            for run_id in run_ids:
                trial = sweep.trials.get(run_id)
                if trial is None:
                    continue
                trial.last_seen = seen
                if trial.state == "crashed" and trial.error.startswith("agent silent"):
                    trial.state, trial.error, trial.ended_at = LIVE, "", None  # it was alive after all
                    write_trial(self._store, trial)
            self._expire(sweep)  # other agents' silent trials
            self._check_done(sweep)
            orders = self._stop_orders(sweep)
        return {run_id: orders[run_id] for run_id in run_ids if run_id in orders}

    def should_stop(self, sweep_id: str, run_id: str) -> str:
        sweep = self.get(sweep_id)
        with sweep.lock:
            return self._stop_orders(sweep, fresh=True).get(run_id, "")

    def report(self, sweep_id: str, run_id: str, state: str, exit_code: int, error: str) -> Trial:
        """The trial's process ended: settle its run, record its objective, maybe end the sweep."""
        sweep = self.get(sweep_id)
        with sweep.lock:
            trial = sweep.trials.get(run_id)
            if trial is None:
                raise UnknownSweep(f"sweep {sweep_id} has no trial {run_id!r}")
            if not trial.running and not trial.error.startswith("agent silent"):
                return trial  # a retried report
            if state == "killed" or trial.stop_reason:
                reason = trial.stop_reason or error or "stopped by its agent"
                final = self._settler.settle(trial, "killed", exit_code, reason, force=True)
                error = reason
            else:
                if state not in ("finished", "failed"):
                    state = "failed"
                if state == "failed" and not error:
                    error = f"the program exited with code {exit_code}"
                final = self._settler.settle(trial, state, exit_code, error)
            trial.state, trial.exit_code, trial.error, trial.ended_at = final, exit_code, error, now_us()
            trial.objective = self._objective(sweep, trial)
            write_trial(self._store, trial)
            self._check_done(sweep)
            return trial

    # -- internals (callers hold the sweep's lock) -----------------------------

    def _observations(self, sweep: LiveSweep) -> list[Observation]:
        config = sweep.config
        if config.method != "bayes":
            return [Observation(flatten(params_of(t), config.params), t.objective, t.running)
                    for t in sweep.trials.values()]
        if any(not t.running and t.objective is None for t in sweep.trials.values()):
            self._refresh_objectives(sweep)
        histories = metric_histories(self._store, sweep.row.project, list(sweep.trials), config.metric)
        return bayes_observations(config, sweep.trials.values(), histories)

    def _refresh_objectives(self, sweep: LiveSweep) -> None:
        """Ended trials without an objective: their run's summary may have arrived since."""
        summaries = run_summaries(self._store, sweep.row.sweep_id)
        for trial in sweep.trials.values():
            if not trial.running and trial.objective is None and trial.run_id in summaries:
                trial.objective = objective(summaries[trial.run_id][1], sweep.config.metric, sweep.config.goal)

    def _objective(self, sweep: LiveSweep, trial: Trial) -> float | None:
        config = sweep.config
        if not config.metric:
            return None
        run = self._settler.run(trial)
        value = objective(run["summary"], config.metric, config.goal) if run else None
        if value is None:  # no summary (a killed process): the metric's last logged value
            history = metric_histories(self._store, trial.project, [trial.run_id], config.metric).get(trial.run_id)
            value = history[-1] if history else None
        return value

    def _expire(self, sweep: LiveSweep) -> None:
        deadline = time.monotonic() - self._trial_timeout
        for trial in sweep.running:
            if trial.last_seen < deadline:
                trial.state, trial.ended_at = "crashed", now_us()
                trial.error = f"agent silent for {self._trial_timeout:g} s (no heartbeat)"
                write_trial(self._store, trial)

    def _why_no_more(self, sweep: LiveSweep) -> str:
        """Why the sweep will issue no more trials, or "" while it may."""
        config = sweep.config
        if config.target is not None:
            sign = -1 if config.goal == "maximize" else 1
            if any(t.objective is not None and sign * t.objective <= sign * config.target
                   for t in sweep.trials.values()):
                return f"a trial reached the target {config.metric} {config.target:g}"
        if config.run_cap and len(sweep.trials) >= config.run_cap:
            return f"run_cap of {config.run_cap} trials reached"
        if config.method == "grid" and len(sweep.trials) >= config.grid_size:
            return f"all {config.grid_size} grid points were issued"
        return ""

    def _check_done(self, sweep: LiveSweep) -> None:
        """A sweep is finished when its target is reached, or when it can issue no more and none run."""
        if sweep.row.state != "running" or not (why := self._why_no_more(sweep)):
            return
        if why.startswith("a trial reached the target") or not sweep.running:
            self._set_state(sweep, "finished")

    def _stop_orders(self, sweep: LiveSweep, fresh: bool = False) -> dict[str, str]:
        """{run id: reason} for running trials to stop; hyperband looks at the metrics at most once a second."""
        running = sweep.running
        if sweep.row.state == "canceled":
            for trial in running:
                trial.stop_reason = trial.stop_reason or f"sweep {sweep.row.sweep_id} was canceled"
        elif sweep.config.early_terminate and (fresh or time.monotonic() - sweep.checked_hyperband
                                               >= HYPERBAND_EVERY_S):
            sweep.checked_hyperband = time.monotonic()
            config = sweep.config
            histories = metric_histories(self._store, sweep.row.project, list(sweep.trials), config.metric)
            stops = hyperband_stops(config.early_terminate, config.goal, histories, {t.run_id for t in running},
                                    config.metric)
            for trial in running:
                if trial.run_id in stops and not trial.stop_reason:
                    trial.stop_reason = stops[trial.run_id]
                    write_trial(self._store, trial)
        return {t.run_id: t.stop_reason for t in running if t.stop_reason}
