"""A client for the ingest's Sweeps service, riding out an ingest restart.

Calls that fail with UNAVAILABLE (the ingest is restarting, or not up yet)
are retried with backoff for up to `retry_for` seconds; anything else is a
SweepError carrying the server's message.

Example:
    client = SweepClient("127.0.0.1:50051")
    sweep = client.create("mnist", {"program": "train.py", "method": "random", "parameters": {...}})
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import grpc

from pulse.channel import auth_metadata, open_channel
from pulse.v1 import sweeps_pb2 as pb

RETRIED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
CALL_TIMEOUT_S = 120.0


class SweepError(RuntimeError):
    """The server refused a sweep call; the message is the server's."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class SweepClient:
    def __init__(self, server: str | None = None, api_key: str | None = None, tls_ca: str | None = None,
                 retry_for: float = 300.0) -> None:
        self.server = server or os.environ.get("PULSE_SERVER", "127.0.0.1:50051")
        self._metadata = auth_metadata(api_key if api_key is not None else os.environ.get("PULSE_API_KEY", ""))
        self._channel = open_channel(self.server, tls_ca)
        self.retry_for = retry_for

    def create(self, project: str, config: dict[str, Any]) -> pb.Sweep:
        return self._call("CreateSweep", pb.CreateSweepRequest(project=project, config_json=json.dumps(config)),
                          pb.Sweep)

    def get(self, sweep_id: str) -> pb.Sweep:
        return self._call("GetSweep", pb.SweepRef(sweep_id=sweep_id), pb.Sweep)

    def stop(self, sweep_id: str) -> pb.Sweep:
        return self._call("StopSweep", pb.SweepRef(sweep_id=sweep_id), pb.Sweep)

    def cancel(self, sweep_id: str) -> pb.Sweep:
        return self._call("CancelSweep", pb.SweepRef(sweep_id=sweep_id), pb.Sweep)

    def next_trial(self, sweep_id: str, agent_id: str, host: str, claim_id: str) -> pb.NextTrialResponse:
        request = pb.NextTrialRequest(sweep_id=sweep_id, agent_id=agent_id, host=host, claim_id=claim_id)
        return self._call("NextTrial", request, pb.NextTrialResponse)

    def heartbeat(self, sweep_id: str, agent_id: str, run_ids: list[str], retry: bool = False) -> pb.HeartbeatResponse:
        request = pb.HeartbeatRequest(sweep_id=sweep_id, agent_id=agent_id, run_ids=run_ids)
        return self._call("Heartbeat", request, pb.HeartbeatResponse, retry=retry)

    def should_stop(self, sweep_id: str, run_id: str) -> pb.StopOrder:
        return self._call("ShouldStop", pb.TrialRef(sweep_id=sweep_id, run_id=run_id), pb.StopOrder)

    def report(self, sweep_id: str, run_id: str, agent_id: str, state: str, exit_code: int,
               error: str) -> pb.TrialReportAck:
        request = pb.TrialReport(sweep_id=sweep_id, run_id=run_id, agent_id=agent_id, state=state,
                                 exit_code=exit_code, error=error)
        return self._call("ReportTrial", request, pb.TrialReportAck)

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: str, request, reply_type, retry: bool = True):
        call = self._channel.unary_unary(f"/pulse.v1.Sweeps/{method}",
                                         request_serializer=type(request).SerializeToString,
                                         response_deserializer=reply_type.FromString)
        deadline = time.monotonic() + (self.retry_for if retry else 0)
        backoff = 0.2
        while True:
            try:
                return call(request, timeout=CALL_TIMEOUT_S, metadata=self._metadata, wait_for_ready=False)
            except grpc.RpcError as exc:
                if exc.code() not in RETRIED or time.monotonic() + backoff > deadline:
                    raise SweepError(exc.code(), f"{method}: {exc.code().name}: {exc.details()}") from None
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
