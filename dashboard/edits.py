"""The dashboard's writes: run edits (the ingest's `pulse.v1.Runs` service) and stopping a sweep
(`pulse.v1.Sweeps`), with the session's key. The dashboard never writes SQL; the ingest checks that
the key may write the project and answers with the reason when it may not.

Example:
    editor = Editor("127.0.0.1:50051", api_key)
    editor.update("mnist", "a1b2c3", name="baseline", tags=["best"])
    editor.delete("mnist", "a1b2c3"); editor.restore("mnist", "a1b2c3")
    editor.stop_sweep("sw1234", cancel=True)     # running trials are stopped too
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from pulse.channel import auth_metadata, open_channel
from pulse.v1 import runs_pb2, runs_pb2_grpc, sweeps_pb2, sweeps_pb2_grpc

TIMEOUT_S = 40.0  # an edit answers once committed: one flush of the ingest's buffers


class EditError(RuntimeError):
    """The ingest refused or could not make the change; the message is fit to show."""


class Editor:
    def __init__(self, server: str, api_key: str = "") -> None:
        self._server = server
        self._metadata = auth_metadata(api_key)

    def update(self, project: str, run_id: str, name: str | None = None, notes: str | None = None,
               tags: Sequence[str] | None = None) -> runs_pb2.RunEdit:
        """Rename, re-note or re-tag a run (None: leave as it is)."""
        request = runs_pb2.UpdateRunRequest(project=project, run_id=run_id)
        if name is not None:
            request.name = name
        if notes is not None:
            request.notes = notes
        if tags is not None:
            request.set_tags = True
            request.tags.extend(tags)
        return self._runs("UpdateRun", request)

    def delete(self, project: str, run_id: str) -> runs_pb2.RunEdit:
        """Soft delete: hidden from the dashboard until restored."""
        return self._runs("DeleteRun", runs_pb2.RunRef(project=project, run_id=run_id))

    def restore(self, project: str, run_id: str) -> runs_pb2.RunEdit:
        return self._runs("RestoreRun", runs_pb2.RunRef(project=project, run_id=run_id))

    def stop_sweep(self, sweep_id: str, cancel: bool = False) -> sweeps_pb2.Sweep:
        """No new trials; with `cancel`, running trials are stopped too (their runs end `killed`)."""
        with open_channel(self._server) as channel:
            stub = sweeps_pb2_grpc.SweepsStub(channel)
            call = stub.CancelSweep if cancel else stub.StopSweep
            return self._call(call, sweeps_pb2.SweepRef(sweep_id=sweep_id))

    def _runs(self, method: str, request) -> runs_pb2.RunEdit:
        with open_channel(self._server) as channel:
            return self._call(getattr(runs_pb2_grpc.RunsStub(channel), method), request)

    def _call(self, call, request):
        try:
            return call(request, timeout=TIMEOUT_S, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise EditError(f"{exc.code().name}: {exc.details()}") from None
