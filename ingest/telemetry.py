"""The gRPC handlers: the telemetry stream (batches in, acks after commit), Query and CheckAccess.

Streams are asyncio handlers on the server's event loop, so an open stream costs a
coroutine, not a thread: thousands of trainers can hold streams while the sync unary
handlers (Query, CheckAccess, sweeps, admin) keep their own thread pool. Each stream has a
reader task that hands each batch to a small worker pool (decode, validate, buffer: never on
the loop) as it arrives, while the handler waits for each batch's generation to commit and
acks it, in order. Requests arrive as raw bytes so a malformed message is answered with
INVALID_ARGUMENT and a reason, not a generic deserialisation failure; when the refused batch's
seq can be read, the trailer `x-pulse-refused-seq` names it, so the client sets aside exactly
that batch.

A stream writes one run: its batches all carry the (project, run_id, stream_id) of its first,
dedup is keyed by all three, and only a key that may write the project gets in, so no other
key's batch can advance or end a run. One live stream owns a run at a time (ingest/owners.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError

from pulse.limits import MAX_BATCH_BYTES  # the emitter sizes its batches from the same figure
from pulse.v1 import telemetry_pb2 as pb
from pulse.wire import REFUSED_SEQ, RETRY_AFTER_MS

from .auth import AuthFailure, KeyStore, Principal
from .blobs import BlobStore
from .buffers import Backpressure, Buffers
from .owners import RunBusy, RunOwners, StreamSlots, TooManyStreams
from .query import QueryRejected, project_filters, run_query, to_ipc
from .runs import RunRegistry, UnknownRun
from .storage import Store
from .validate import BatchError, check_batch, decode

log = logging.getLogger(__name__)

GRPC_MAX_MESSAGE_BYTES = 2 * MAX_BATCH_BYTES  # above our own limit, so ours answers first
REMEMBERED_STREAMS = 100_000
READ_AHEAD = 256  # batches a stream may have validated but not yet acked; then it stops reading

StreamKey = tuple[str, str, str]  # (project, run_id, stream_id)


@dataclass
class StreamAbort(Exception):
    code: grpc.StatusCode
    message: str
    retry_after_ms: int = 0
    seq: int = 0  # the batch refused, when its seq could be read (0: it could not)


class StreamState:
    """What one Stream call has established: who sends, and the one run it writes."""

    def __init__(self, principal: Principal, peer: str) -> None:
        self.principal = principal
        self.peer = peer
        self.key: StreamKey | None = None  # set by the first batch
        self.closed = False  # the call ended; a batch still being accepted must not keep its run

    @property
    def run(self) -> tuple[str, str]:
        assert self.key is not None
        return self.key[0], self.key[1]


_END = object()
BLOB_RETRY_MS = 2000


class TelemetryService:
    def __init__(self, store: Store, buffers: Buffers, registry: RunRegistry, keys: KeyStore | None = None,
                 blobs: BlobStore | None = None, *, owners: RunOwners | None = None,
                 slots: StreamSlots | None = None, work: Executor | None = None) -> None:
        self._store = store
        self._blobs = blobs
        self._keys = keys or KeyStore(store, enabled=False)
        self._buffers = buffers
        self._registry = registry
        self.owners = owners or RunOwners(silence_timeout=60.0)
        self.slots = slots or StreamSlots(per_key=4096, total=16384)
        self._work = work  # where batches are decoded; None: the loop's default executor
        self._acked: OrderedDict[StreamKey, int] = OrderedDict()  # highest committed seq per stream
        self._acked_lock = threading.Lock()
        self._commits: dict[int, asyncio.Future] = {}  # generation -> resolved on commit (loop thread only)
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

    async def stream(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[pb.Ack]:
        loop = asyncio.get_running_loop()
        try:  # a key the cache does not hold is a store query: off the loop
            principal = await loop.run_in_executor(self._work, self._keys.authenticate, context)
        except AuthFailure as exc:
            await context.abort(exc.code, str(exc))
        if principal.read_only:  # refused before it holds a slot: a reader has no stream to keep open
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, principal.write_problem(""))
        try:
            self.slots.take(principal.key_id)
        except TooManyStreams as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        state = StreamState(principal, context.peer())
        pending: asyncio.Queue = asyncio.Queue(READ_AHEAD)
        reader = asyncio.create_task(self._read(requests, pending, state))
        try:
            while True:
                item = await pending.get()
                if item is _END:
                    return
                if isinstance(item, StreamAbort):
                    trailers = (((RETRY_AFTER_MS, str(item.retry_after_ms)),) if item.retry_after_ms else ()) + \
                        (((REFUSED_SEQ, str(item.seq)),) if item.seq else ())
                    if trailers:
                        context.set_trailing_metadata(trailers)
                    await context.abort(item.code, item.message)
                ack, generation = item
                await self._committed(generation)
                self._remember(state.key, ack.seq)
                yield ack
        finally:
            reader.cancel()
            self.slots.give(principal.key_id)
            state.closed = True  # before the release: a worker that takes the run after it lets go again
            if state.key is not None:
                self.owners.release(state.run, state.key[2], state)

    async def _read(self, requests: AsyncIterator[bytes], pending: asyncio.Queue, state: StreamState) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for raw in requests:
                try:
                    accepted = await loop.run_in_executor(self._work, self._accept, raw, state)
                except StreamAbort as abort:
                    self.rejected_batches += 1
                    await pending.put(abort)
                    return
                await pending.put(accepted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("stream reader failed")
            await pending.put(StreamAbort(grpc.StatusCode.INTERNAL, "ingest failed reading the stream"))
        await pending.put(_END)

    async def _committed(self, generation: int) -> None:
        """Wait, without holding a thread, until `generation` is committed."""
        if self._buffers.committed >= generation:
            return
        future = self._commits.get(generation)
        if future is None:  # one future per generation, however many streams wait on it
            loop = asyncio.get_running_loop()
            future = self._commits[generation] = loop.create_future()

            def resolve() -> None:
                self._commits.pop(generation, None)
                if not future.done():
                    future.set_result(None)

            self._buffers.when_committed(generation, lambda: loop.call_soon_threadsafe(resolve))
        await asyncio.shield(future)  # a stream that goes away must not cancel the others' wait

    def _accept(self, raw: bytes, state: StreamState) -> tuple[pb.Ack, int]:
        """Validate and buffer one batch (on a worker thread); the ack and the generation to wait for."""
        if len(raw) > MAX_BATCH_BYTES:
            raise StreamAbort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"batch of {len(raw)} bytes exceeds the limit of {MAX_BATCH_BYTES} bytes",
                              seq=_seq_of(raw))
        batch = pb.Batch()
        try:
            batch.ParseFromString(raw)
        except DecodeError as exc:  # no seq to name: the client infers which batch it was
            raise StreamAbort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed Batch: {exc}") from exc
        try:
            check_batch(batch)
        except BatchError as exc:
            raise StreamAbort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed Batch: {exc}", seq=batch.seq) from exc
        principal = state.principal
        if problem := principal.write_problem(batch.project):
            raise StreamAbort(grpc.StatusCode.PERMISSION_DENIED, problem)
        key = (batch.project, batch.run_id, batch.stream_id)
        if state.key is None:
            state.key = key
        elif key != state.key:
            raise StreamAbort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"a stream writes one run: this stream began with project {state.key[0]!r}, run "
                              f"{state.key[1]!r}, stream {state.key[2]!r}, but a batch says project "
                              f"{key[0]!r}, run {key[1]!r}, stream {key[2]!r}", seq=batch.seq)
        run = (batch.project, batch.run_id)
        try:
            if batch.replay:
                self.owners.check_replay(run, batch.stream_id)
            else:
                self.owners.hold(run, batch.stream_id, principal.key_id, _host(batch) or state.peer, state)
                if state.closed:
                    self.owners.release(run, batch.stream_id, state)
        except RunBusy as exc:
            raise StreamAbort(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc
        self.batches += 1
        ack = pb.Ack(stream_id=batch.stream_id, seq=batch.seq)
        with self._acked_lock:
            if batch.seq <= self._acked.get(key, 0):
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
            generation = self._buffers.add(decoded.tables)
        except Backpressure as exc:
            raise StreamAbort(grpc.StatusCode.UNAVAILABLE, str(exc), exc.retry_after_ms) from exc
        if any(event.WhichOneof("kind") == "finish" for event in decoded.events):
            self.owners.finished(run, batch.stream_id)  # a resume may follow at once
        return ack, generation

    def _remember(self, key: StreamKey | None, seq: int) -> None:
        if key is None:
            return
        with self._acked_lock:
            self._acked[key] = max(seq, self._acked.get(key, 0))
            self._acked.move_to_end(key)
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
        # project "" asks what the key itself may do: any valid key is told its own scope, nothing more
        if not request.write and request.project and principal.project and principal.project != request.project:
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          f"key {principal.key_id} is for project {principal.project!r}, not {request.project!r}")
        reply = pb.AccessReply(auth_required=self._keys.enabled, key_id=principal.key_id,
                               max_batch_bytes=MAX_BATCH_BYTES, project=principal.project,
                               read_only=principal.read_only, admin=principal.admin)
        if request.run_id and (owner := self.owners.live((request.project, request.run_id))):
            reply.run_live_owner.CopyFrom(pb.RunOwner(stream_id=owner.stream_id, host=owner.host,
                                                      since_us=owner.since_us))
        if request.run_id:
            exists, next_step = self._store.query_rows(
                "SELECT (SELECT count() > 0 FROM runs WHERE project = {p:String} AND run_id = {r:String}), "
                "(SELECT ifNull(maxOrNull(step) + 1, 0) FROM metrics WHERE project = {p:String} "
                "AND run_id = {r:String})", {"p": request.project, "r": request.run_id})[0]
            reply.run_exists, reply.next_step = bool(exists), int(next_step)
        return reply


def _seq_of(raw: bytes) -> int:
    """The seq of a batch refused before it was read (too large), or 0 when it does not parse.

    Parsing once more costs a copy of bytes the server refuses anyway, one per stream (the abort
    ends it), and names the batch for the client instead of leaving it to infer which one it was.
    """
    try:
        return pb.Batch.FromString(raw).seq
    except DecodeError:
        return 0


def _host(batch: pb.Batch) -> str:
    """The host a batch's RunStart names ("" without one)."""
    return next((e.start.host for e in batch.events if e.WhichOneof("kind") == "start"), "")
