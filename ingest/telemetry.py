"""The gRPC handlers: the telemetry stream (batches in, acks after commit) and Query.

Each stream gets a reader thread that validates and buffers batches as they
arrive, while the handler's response generator waits for each batch's
generation to commit and acks it, in order. Requests arrive as raw bytes so a
malformed message is answered with INVALID_ARGUMENT and a reason, not a
generic deserialisation failure.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from pulse.v1 import telemetry_pb2 as pb

from .auth import OPEN, AuthFailure, KeyStore, Principal
from .blobs import BlobStore
from .buffers import Backpressure, Buffers
from .query import QueryRejected, project_filters, run_query, to_ipc
from .runs import RunRegistry, UnknownRun
from .storage import Store
from .validate import BatchError, check_batch, decode

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 32 << 20
GRPC_MAX_MESSAGE_BYTES = 2 * MAX_BATCH_BYTES  # above our own limit, so ours answers first
REMEMBERED_STREAMS = 100_000


@dataclass
class StreamAbort(Exception):
    code: grpc.StatusCode
    message: str
    retry_after_ms: int = 0


_END = object()
BLOB_RETRY_MS = 2000


class TelemetryService:
    def __init__(self, store: Store, buffers: Buffers, registry: RunRegistry, keys: KeyStore | None = None,
                 blobs: BlobStore | None = None) -> None:
        self._store = store
        self._blobs = blobs
        self._keys = keys or KeyStore(store, enabled=False)
        self._buffers = buffers
        self._registry = registry
        self._acked: OrderedDict[str, int] = OrderedDict()  # stream_id -> highest committed seq
        self._acked_lock = threading.Lock()
        self.batches = 0
        self.rejected_batches = 0

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler("pulse.v1.Telemetry", {
            "Stream": grpc.stream_stream_rpc_method_handler(
                self.stream, request_deserializer=None, response_serializer=pb.Ack.SerializeToString),
            "Query": grpc.unary_unary_rpc_method_handler(
                self.query, request_deserializer=None, response_serializer=pb.QueryResponse.SerializeToString),
            "CheckAccess": grpc.unary_unary_rpc_method_handler(
                self.check_access, request_deserializer=None,
                response_serializer=pb.AccessReply.SerializeToString),
        })

    def _principal(self, context: grpc.ServicerContext) -> Principal:
        try:
            return self._keys.authenticate(context)
        except AuthFailure as exc:
            context.abort(exc.code, str(exc))
            raise  # abort raises; this keeps type checkers honest

    # -- Stream ---------------------------------------------------------------

    def stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[pb.Ack]:
        principal = self._principal(context)
        pending: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, args=(requests, pending, principal), name="pulse-stream-reader",
                         daemon=True).start()
        while True:
            item = pending.get()
            if item is _END:
                return
            if isinstance(item, StreamAbort):
                if item.retry_after_ms:
                    context.set_trailing_metadata((("retry-after-ms", str(item.retry_after_ms)),))
                context.abort(item.code, item.message)
            ack, generation = item
            while not self._buffers.wait(generation, timeout=1.0):
                if not context.is_active():
                    return
            self._remember(ack.stream_id, ack.seq)
            yield ack

    def _read(self, requests: Iterator[bytes], pending: queue.Queue, principal: Principal) -> None:
        try:
            for raw in requests:
                try:
                    pending.put(self._accept(raw, principal))
                except StreamAbort as abort:
                    self.rejected_batches += 1
                    pending.put(abort)
                    return
        except grpc.RpcError:
            pass  # the client went away; its unacked batches come again on a new stream
        except Exception:
            log.exception("stream reader failed")
            pending.put(StreamAbort(grpc.StatusCode.INTERNAL, "ingest failed reading the stream"))
        finally:
            pending.put(_END)

    def _accept(self, raw: bytes, principal: Principal = OPEN) -> tuple[pb.Ack, int]:
        if len(raw) > MAX_BATCH_BYTES:
            raise StreamAbort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"batch of {len(raw)} bytes exceeds the limit of {MAX_BATCH_BYTES} bytes")
        batch = pb.Batch()
        try:
            batch.ParseFromString(raw)
            check_batch(batch)
        except (DecodeError, BatchError) as exc:
            raise StreamAbort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed Batch: {exc}") from exc
        if problem := principal.write_problem(batch.project):
            raise StreamAbort(grpc.StatusCode.PERMISSION_DENIED, problem)
        self.batches += 1
        ack = pb.Ack(stream_id=batch.stream_id, seq=batch.seq)
        with self._acked_lock:
            if batch.seq <= self._acked.get(batch.stream_id, 0):
                return ack, 0  # a resent batch we already committed
        try:
            decoded = decode(batch, self._blobs)
        except OSError as exc:  # the blob store (a directory, S3) failed: nothing is kept, the client resends
            log.warning("blob store failed for a batch of %s/%s: %s", batch.project, batch.run_id, exc)
            raise StreamAbort(grpc.StatusCode.UNAVAILABLE, f"the media blob store failed: {exc}",
                              BLOB_RETRY_MS) from exc
        ack.rejected.extend(decoded.rejected)
        try:
            self._registry.apply(batch, decoded.events)
        except UnknownRun as exc:
            ack.rejected.append(pb.Rejection(what="batch", reason=str(exc)))
            return ack, 0
        try:
            return ack, self._buffers.add(decoded.tables)
        except Backpressure as exc:
            raise StreamAbort(grpc.StatusCode.UNAVAILABLE, str(exc), exc.retry_after_ms) from exc

    def _remember(self, stream_id: str, seq: int) -> None:
        with self._acked_lock:
            self._acked[stream_id] = max(seq, self._acked.get(stream_id, 0))
            self._acked.move_to_end(stream_id)
            if len(self._acked) > REMEMBERED_STREAMS:
                self._acked.popitem(last=False)

    # -- Query ----------------------------------------------------------------

    def query(self, raw: bytes, context: grpc.ServicerContext) -> pb.QueryResponse:
        principal = self._principal(context)
        request = pb.QueryRequest()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed QueryRequest: {exc}")
        try:
            parameters = {name: json.loads(value) for name, value in request.parameters.items()}
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"query parameters must be JSON values: {exc}")
        try:
            table = run_query(self._store, request.sql, parameters, request.max_rows, request.timeout_ms / 1000,
                              filters=project_filters(self._store, principal.project))
        except QueryRejected as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.QueryResponse(arrow_ipc=to_ipc(table), rows=table.num_rows)

    def check_access(self, raw: bytes, context: grpc.ServicerContext) -> pb.AccessReply:
        request = pb.AccessRequest()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed AccessRequest: {exc}")
        principal = self._principal(context)
        if request.write and (problem := principal.write_problem(request.project)):
            context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)
        if not request.write and principal.project and principal.project != request.project:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"key {principal.key_id} is for project {principal.project!r}, not {request.project!r}")
        reply = pb.AccessReply(auth_required=self._keys.enabled, key_id=principal.key_id,
                               max_batch_bytes=MAX_BATCH_BYTES)
        if request.run_id:
            exists, next_step = self._store.query_rows(
                "SELECT (SELECT count() > 0 FROM runs WHERE project = {p:String} AND run_id = {r:String}), "
                "(SELECT ifNull(maxOrNull(step) + 1, 0) FROM metrics WHERE project = {p:String} "
                "AND run_id = {r:String})", {"p": request.project, "r": request.run_id})[0]
            reply.run_exists, reply.next_step = bool(exists), int(next_step)
        return reply
