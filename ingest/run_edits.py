"""The `pulse.v1.Runs` service: rename, re-tag, re-note, delete and restore runs (the dashboard's edits).

Every call needs a key that may write the run's project (`Principal.write_problem`; with auth off,
anyone who reaches the ingest may). An edit is a new version of the run's `runs` row, made by the
run registry (`RunRegistry.edit`) and committed by the flusher before the call answers, so the
dashboard reads it at once, and a run that is still live keeps it: its later heartbeats and
summaries are written from the edited row. Deleting is soft (`runs.deleted = 1`): the run and all
its data stay, the dashboard hides it, and RestoreRun brings it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from pulse.limits import name_problem, notes_problem, tags_problem
from pulse.v1 import runs_pb2 as pb

from .auth import AuthFailure, KeyStore
from .buffers import Buffers
from .runs import RunRegistry, UnknownRun

log = logging.getLogger(__name__)
SERVICE = "pulse.v1.Runs"
COMMIT_WAIT_S = 30.0


class RunEditService:
    def __init__(self, registry: RunRegistry, buffers: Buffers, keys: KeyStore) -> None:
        self._registry = registry
        self._buffers = buffers
        self._keys = keys

    def handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Callable, type]] = {
            "UpdateRun": (self.update, pb.UpdateRunRequest),
            "DeleteRun": (self.delete, pb.RunRef),
            "RestoreRun": (self.restore, pb.RunRef),
        }
        return grpc.method_handlers_generic_handler(SERVICE, {
            name: grpc.unary_unary_rpc_method_handler(self._guard(fn, request), request_deserializer=None,
                                                      response_serializer=pb.RunEdit.SerializeToString)
            for name, (fn, request) in methods.items()})

    def _guard(self, fn: Callable, request_type: type) -> Callable:
        def call(raw: bytes, context: grpc.ServicerContext) -> pb.RunEdit:
            request = request_type()
            try:
                request.ParseFromString(raw)  # here, not in grpc, so garbage gets INVALID_ARGUMENT
            except DecodeError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {request_type.__name__}: {exc}")
            for value, what in ((request.project, "project"), (request.run_id, "run_id")):
                if problem := name_problem(value, what):
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            try:
                principal = self._keys.authenticate(context)
            except AuthFailure as exc:
                context.abort(exc.code, str(exc))
            if problem := principal.write_problem(request.project):
                context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)
            try:
                row = fn(request, context)
            except UnknownRun as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            self._commit()
            return _message(row)
        return call

    def update(self, request: pb.UpdateRunRequest, context: grpc.ServicerContext) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if request.HasField("name"):
            fields["name"] = request.name.strip()
            if problem := name_problem(fields["name"], "name"):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        if request.HasField("notes"):
            fields["notes"] = request.notes
            if problem := notes_problem(request.notes):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        if request.set_tags:
            tags = list(dict.fromkeys(t.strip() for t in request.tags if t.strip()))
            if problem := tags_problem(tags):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
            fields["tags"] = tags
        if not fields:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "nothing to change: set name, notes or set_tags")
        return self._registry.edit(request.project, request.run_id, **fields)

    def delete(self, request: pb.RunRef, context: grpc.ServicerContext) -> dict[str, Any]:
        return self._registry.edit(request.project, request.run_id, deleted=1)

    def restore(self, request: pb.RunRef, context: grpc.ServicerContext) -> dict[str, Any]:
        return self._registry.edit(request.project, request.run_id, deleted=0)

    def _commit(self) -> None:
        """Answer once the edited row is in ClickHouse, so the dashboard's next read sees it."""
        generation = self._buffers.add({})
        if not self._buffers.wait(generation, timeout=COMMIT_WAIT_S):
            log.warning("a run edit is not committed after %.0f s; it stays queued", COMMIT_WAIT_S)


def _message(row: dict[str, Any]) -> pb.RunEdit:
    return pb.RunEdit(project=row["project"], run_id=row["run_id"], name=row["name"], tags=row["tags"],
                      notes=row["notes"], deleted=bool(row["deleted"]), state=row["state"])
