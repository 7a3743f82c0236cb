"""Ending a trial's run through the ingest's own run registry, as a run's own events would.

When an agent reports a trial's process gone, the run may already be over
(the emitter sent its RunFinish), still `running` (the process died before it
could), or missing (the program never called `emitter.init`). The controller
settles it with ordinary RunStart/RunFinish events applied by the registry
and committed by the flusher, so a stopped trial ends `killed` with the
reason in `runs.error`, and every trial has a row in `runs`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pulse.v1 import telemetry_pb2 as tpb

from ..buffers import Buffers
from ..runs import TERMINAL, RunRegistry
from .state import Trial

log = logging.getLogger(__name__)
COMMIT_WAIT_S = 30.0


class RunSettler:
    def __init__(self, registry: RunRegistry, buffers: Buffers) -> None:
        self._registry = registry
        self._buffers = buffers

    def run(self, trial: Trial) -> dict[str, Any] | None:
        return self._registry.get(trial.project, trial.run_id)

    def settle(self, trial: Trial, state: str, exit_code: int, error: str, force: bool = False) -> str:
        """End the trial's run as `state` unless it already ended (`force`: even then). Returns its final state."""
        run = self.run(trial)
        if run is not None and run["state"] in TERMINAL and run["state"] != "crashed" and not force:
            return run["state"]
        if run is not None and force and run["state"] == state and run["error"] == error:
            return state
        events = []
        if run is None:
            events.append(tpb.Event(start=tpb.RunStart(
                name=trial.run_id, sweep_id=trial.sweep_id, config_json=trial.params,
                created_at_us=trial.claimed_at, host=trial.host)))
        events.append(tpb.Event(finish=tpb.RunFinish(state=state, exit_code=exit_code, error=error,
                                                     ts_us=time.time_ns() // 1000)))
        # replay=True: the controller's word about a run is no sign that the run is alive.
        batch = tpb.Batch(project=trial.project, run_id=trial.run_id, stream_id=f"sweep-controller.{trial.run_id}",
                          seq=1, replay=True)
        self._registry.apply(batch, events)
        self.commit()
        return state

    def commit(self) -> None:
        """Wait until what the registry holds now is in ClickHouse."""
        generation = self._buffers.add({})
        if not self._buffers.wait(generation, timeout=COMMIT_WAIT_S):
            log.warning("the settled state of a sweep run is not committed after %.0f s; it stays queued",
                        COMMIT_WAIT_S)
