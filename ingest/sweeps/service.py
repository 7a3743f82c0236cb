"""The `pulse.v1.Sweeps` gRPC service: the wire around the SweepController.

With API keys on (`pulse ingest --auth`), creating, stopping and running
trials needs a key that may write the sweep's project; reading a sweep needs
one that may read it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from pulse.v1 import sweeps_pb2 as pb

from ..buffers import Buffers
from ..runs import RunRegistry
from ..storage import Store
from .config import SweepConfigError
from .controller import LiveSweep, SweepController, UnknownSweep
from .settle import RunSettler
from .state import Trial

log = logging.getLogger(__name__)
SERVICE = "pulse.v1.Sweeps"


class SweepService:
    def __init__(self, store: Store, registry: RunRegistry, buffers: Buffers, keys: Any = None) -> None:
        self.controller = SweepController(store, RunSettler(registry, buffers))
        self._keys = keys  # ingest.auth.KeyStore, or None without auth

    def handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Callable, type, type]] = {
            "CreateSweep": (self.create, pb.CreateSweepRequest, pb.Sweep),
            "GetSweep": (self.get, pb.SweepRef, pb.Sweep),
            "StopSweep": (self.stop, pb.SweepRef, pb.Sweep),
            "CancelSweep": (self.cancel, pb.SweepRef, pb.Sweep),
            "NextTrial": (self.next_trial, pb.NextTrialRequest, pb.NextTrialResponse),
            "Heartbeat": (self.heartbeat, pb.HeartbeatRequest, pb.HeartbeatResponse),
            "ShouldStop": (self.should_stop, pb.TrialRef, pb.StopOrder),
            "ReportTrial": (self.report, pb.TrialReport, pb.TrialReportAck),
        }
        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(self._guard(fn, request), request_deserializer=None,
                                                      response_serializer=reply.SerializeToString)
            for name, (fn, request, reply) in methods.items()})

    def _guard(self, fn: Callable, request_type: type) -> Callable:
        def call(raw: bytes, context: grpc.ServicerContext):
            request = request_type()
            try:
                request.ParseFromString(raw)  # here, not in grpc, so garbage gets INVALID_ARGUMENT
            except DecodeError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {request_type.__name__}: {exc}")
            try:
                return fn(request, context)
            except SweepConfigError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            except UnknownSweep as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        return call

    def _authorize(self, context: grpc.ServicerContext, project: str, write: bool) -> None:
        if self._keys is None or not getattr(self._keys, "enabled", False):
            return
        from ..auth import AuthFailure

        try:
            principal = self._keys.authenticate(context)
        except AuthFailure as exc:
            context.abort(exc.code, str(exc))
        problem = principal.write_problem(project) if write else (
            f"key {principal.key_id} is for project {principal.project!r}, not {project!r}"
            if principal.project and principal.project != project else None)
        if problem:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)

    def _sweep(self, sweep_id: str, context: grpc.ServicerContext, write: bool) -> LiveSweep:
        sweep = self.controller.get(sweep_id)
        self._authorize(context, sweep.row.project, write)
        return sweep

    # -- sweeps ---------------------------------------------------------------

    def create(self, request: pb.CreateSweepRequest, context: grpc.ServicerContext) -> pb.Sweep:
        try:
            raw = json.loads(request.config_json)
        except ValueError as exc:
            raise SweepConfigError([f"config_json is not JSON: {exc}"]) from exc
        project = request.project or (raw.get("project") if isinstance(raw, dict) else "") or ""
        self._authorize(context, project or "uncategorized", write=True)
        return _sweep_message(self.controller.create(request.project, raw))

    def get(self, request: pb.SweepRef, context: grpc.ServicerContext) -> pb.Sweep:
        return _sweep_message(self._sweep(request.sweep_id, context, write=False))

    def stop(self, request: pb.SweepRef, context: grpc.ServicerContext) -> pb.Sweep:
        self._sweep(request.sweep_id, context, write=True)
        return _sweep_message(self.controller.set_state(request.sweep_id, "stopped"))

    def cancel(self, request: pb.SweepRef, context: grpc.ServicerContext) -> pb.Sweep:
        self._sweep(request.sweep_id, context, write=True)
        return _sweep_message(self.controller.set_state(request.sweep_id, "canceled"))

    # -- trials ---------------------------------------------------------------

    def next_trial(self, request: pb.NextTrialRequest, context: grpc.ServicerContext) -> pb.NextTrialResponse:
        self._sweep(request.sweep_id, context, write=True)
        trial, reason = self.controller.next_trial(request.sweep_id, request.agent_id, request.host,
                                                   request.claim_id)
        if trial is None:
            return pb.NextTrialResponse(done=True, reason=reason)
        return pb.NextTrialResponse(trial=_trial_message(trial))

    def heartbeat(self, request: pb.HeartbeatRequest, context: grpc.ServicerContext) -> pb.HeartbeatResponse:
        sweep = self._sweep(request.sweep_id, context, write=True)
        stops = self.controller.heartbeat(request.sweep_id, list(request.run_ids))
        return pb.HeartbeatResponse(stop=[pb.StopOrder(run_id=r, stop=True, reason=why) for r, why in stops.items()],
                                    sweep_state=sweep.row.state)

    def should_stop(self, request: pb.TrialRef, context: grpc.ServicerContext) -> pb.StopOrder:
        self._sweep(request.sweep_id, context, write=False)
        reason = self.controller.should_stop(request.sweep_id, request.run_id)
        return pb.StopOrder(run_id=request.run_id, stop=bool(reason), reason=reason)

    def report(self, request: pb.TrialReport, context: grpc.ServicerContext) -> pb.TrialReportAck:
        self._sweep(request.sweep_id, context, write=True)
        trial = self.controller.report(request.sweep_id, request.run_id, request.state, request.exit_code,
                                       request.error)
        ack = pb.TrialReportAck(run_state=trial.state)
        if trial.objective is not None:
            ack.has_objective, ack.objective = True, trial.objective
        return ack


def _sweep_message(sweep: LiveSweep) -> pb.Sweep:
    row = sweep.row
    with sweep.lock:
        trials, running = len(sweep.trials), len(sweep.running)
    return pb.Sweep(sweep_id=row.sweep_id, project=row.project, config_json=row.config, state=row.state,
                    trials=trials, running=running, grid_size=sweep.config.grid_size, created_at_us=row.created_at)


def _trial_message(trial: Trial) -> pb.Trial:
    return pb.Trial(sweep_id=trial.sweep_id, project=trial.project, run_id=trial.run_id, params_json=trial.params,
                    seq=trial.seq)
