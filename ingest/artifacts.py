"""The `pulse.v1.Artifacts` gRPC service: blobs in and out, versions committed and resolved.

The unary calls (HaveBlobs, CommitArtifact, ResolveArtifact, UseArtifact) are sync
handlers in the server's thread pool. UploadBlob and DownloadBlob are coroutines on
the server's loop: a GB checkpoint is a long call, and it must hold no thread while it
waits on the network; its file work (write, hash, read) runs on a small pool of this
service's own, so uploads never crowd out queries. A stream holds one 4 MiB chunk at a
time, whatever the blob's size.

Keys: writes (HaveBlobs, UploadBlob, CommitArtifact, UseArtifact's run) need a key
that may write the project; reads (ResolveArtifact, UseArtifact's artifact,
DownloadBlob) one that may read it. A blob is visible to a project only once that
project uploaded it (ingest/artifact_uploads.py, table artifact_blobs).

Each UploadBlob logs how many bytes it received ("... bytes received"): what the
tests and operators count to see that nothing was sent twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from pulse.artifact_manifest import (
    MAX_ALIASES,
    MAX_DESCRIPTION_BYTES,
    MAX_ENTRIES,
    MAX_METADATA_BYTES,
    alias_problem,
    entry_problem,
    is_sha256,
    manifest_digest,
    name_problem,
    with_chunk_data,
)
from pulse.limits import name_problem as project_problem
from pulse.v1 import artifacts_pb2 as pb
from pulse.wire import COMMITTED_OFFSET

from .artifact_store import Catalog, Manifest, TypeMismatch, UnknownArtifact, VersionRow, metadata_text
from .artifact_uploads import CHUNK_BYTES, BlobFiles, NoSpace, UploadBusy
from .auth import AuthFailure, KeyStore, Principal
from .blobs import BlobStore
from .storage import Store

log = logging.getLogger(__name__)
SERVICE = "pulse.v1.Artifacts"
MAX_BLOB_BYTES = 1 << 40


class ArtifactService:
    def __init__(self, store: Store, keys: KeyStore, blobs: BlobStore, io_threads: int = 8) -> None:
        self.catalog = Catalog(store)
        self.files = BlobFiles(blobs)
        self._keys = keys
        self._io = ThreadPoolExecutor(io_threads, thread_name_prefix="pulse-artifact-io")
        self.received_bytes = 0

    def handler(self) -> grpc.GenericRpcHandler:
        unary: dict[str, tuple[Callable, type, type]] = {
            "HaveBlobs": (self.have_blobs, pb.HaveBlobsRequest, pb.HaveBlobsReply),
            "CommitArtifact": (self.commit, pb.CommitRequest, pb.ArtifactVersion),
            "ResolveArtifact": (self.resolve, pb.ArtifactRef, pb.ArtifactVersion),
            "UseArtifact": (self.use, pb.UseRequest, pb.ArtifactVersion),
        }
        methods = {name: grpc.unary_unary_rpc_method_handler(self._guard(fn, request), request_deserializer=None,
                                                            response_serializer=reply.SerializeToString)
                   for name, (fn, request, reply) in unary.items()}
        methods["UploadBlob"] = grpc.stream_stream_rpc_method_handler(
            self.upload_blob, request_deserializer=None, response_serializer=pb.UploadAck.SerializeToString)
        methods["DownloadBlob"] = grpc.unary_stream_rpc_method_handler(  # yields serialized BlobChunks
            self.download_blob, request_deserializer=None, response_serializer=None)
        return grpc.method_handlers_generic_handler(SERVICE, methods)

    # -- keys -----------------------------------------------------------------

    def _guard(self, fn: Callable, request_type: type) -> Callable:
        def call(raw: bytes, context: grpc.ServicerContext):
            request = request_type()
            try:
                request.ParseFromString(raw)  # here, not in grpc, so garbage gets INVALID_ARGUMENT
            except DecodeError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {request_type.__name__}: {exc}")
            try:
                return fn(request, context, self._principal(context))
            except UnknownArtifact as exc:
                context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            except (TypeMismatch, ValueError) as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return call

    def _principal(self, context: Any) -> Principal:
        try:
            return self._keys.authenticate(context)
        except AuthFailure as exc:
            context.abort(exc.code, str(exc))
            raise

    @staticmethod
    def _problem(principal: Principal, project: str, write: bool) -> str | None:
        if problem := project_problem(project, "project"):  # the runs' rule for projects
            return problem
        if write:
            return principal.write_problem(project)
        if principal.project and principal.project != project:
            return f"key {principal.key_id} is for project {principal.project!r}, not {project!r}"
        return None

    def _allow(self, context: Any, principal: Principal, project: str, write: bool) -> None:
        if problem := self._problem(principal, project, write):
            code = grpc.StatusCode.INVALID_ARGUMENT if project_problem(project, "") else \
                grpc.StatusCode.PERMISSION_DENIED
            context.abort(code, problem)

    # -- unary ----------------------------------------------------------------

    def have_blobs(self, request: pb.HaveBlobsRequest, context: Any, principal: Principal) -> pb.HaveBlobsReply:
        self._allow(context, principal, request.project, write=True)
        shas = list(request.sha256)
        if bad := next((s for s in shas if not is_sha256(s)), None):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{bad!r} is not a sha256 (64 lowercase hex digits)")
        owned = self.catalog.owned_blobs(request.project, shas)
        reply = pb.HaveBlobsReply(chunk_bytes=CHUNK_BYTES)
        for sha in shas:
            present = sha in owned and self.files.has(sha)  # a blob deleted from the store is uploaded again
            reply.blobs.append(pb.BlobState(sha256=sha, present=present,
                                            offset=0 if present else self.files.offset(request.project, sha)))
        return reply

    def commit(self, request: pb.CommitRequest, context: Any, principal: Principal) -> pb.ArtifactVersion:
        self._allow(context, principal, request.project, write=True)
        manifest = _manifest(request)
        blobs = sorted({sha for _, sha, _, uri, _ in manifest.entries if not uri})
        missing = set(blobs) - self.catalog.owned_blobs(request.project, blobs)
        if missing:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{len(missing)} of the manifest's blobs were not uploaded to project "
                          f"{request.project!r}: {', '.join(sorted(missing)[:3])}{' ...' if len(missing) > 3 else ''}")
        row = self.catalog.commit(manifest)
        log.info("artifact %s/%s:v%d %s (%d files, %d bytes)", row.project, row.name, row.version,
                 "unchanged" if row.existed else "committed", row.file_count, row.size)
        return self._reply(row, with_entries=False)

    def resolve(self, request: pb.ArtifactRef, context: Any, principal: Principal) -> pb.ArtifactVersion:
        self._allow(context, principal, request.project, write=False)
        _check_name(request.name)
        return self._reply(self.catalog.resolve(request.project, request.name, request.ref), with_entries=True)

    def use(self, request: pb.UseRequest, context: Any, principal: Principal) -> pb.ArtifactVersion:
        ref = request.artifact
        self._allow(context, principal, ref.project, write=False)
        run_project = request.run_project or ref.project
        if request.run_id:
            self._allow(context, principal, run_project, write=True)
        _check_name(ref.name)
        row = self.catalog.resolve(ref.project, ref.name, ref.ref)
        if request.run_id:
            self.catalog.record_use(ref.project, ref.name, row.version, run_project, request.run_id, "input")
        return self._reply(row, with_entries=True)

    def _reply(self, row: VersionRow, with_entries: bool) -> pb.ArtifactVersion:
        reply = pb.ArtifactVersion(
            project=row.project, name=row.name, type=row.type, description=row.description, version=row.version,
            digest=row.digest, metadata_json=row.metadata, size=row.size, file_count=row.file_count,
            created_by_run=row.created_by_run, created_at_us=row.created_at_us, aliases=row.aliases,
            existed=row.existed)
        if with_entries:
            reply.entries.extend(pb.ManifestEntry(path=p, sha256=s, size=n, ref_uri=u, ref_digest=d)
                                 for p, s, n, u, d in self.catalog.entries(row.project, row.name, row.version))
        return reply

    # -- streams --------------------------------------------------------------

    async def _stream_principal(self, context: grpc.aio.ServicerContext) -> Principal:
        loop = asyncio.get_running_loop()
        try:  # a key the cache does not hold is a store query: off the loop
            return await loop.run_in_executor(self._io, self._keys.authenticate, context)
        except AuthFailure as exc:
            await context.abort(exc.code, str(exc))
            raise

    async def upload_blob(self, requests: AsyncIterator[bytes],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.UploadAck]:
        loop = asyncio.get_running_loop()
        principal = await self._stream_principal(context)
        partial, blob, received, complete = None, None, 0, False
        try:
            async for raw in requests:
                chunk = pb.BlobChunk()
                try:
                    chunk.ParseFromString(raw)
                except DecodeError as exc:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed BlobChunk: {exc}")
                if partial is None:
                    blob = (chunk.project, chunk.sha256, chunk.size)
                    partial = await self._open(loop, context, principal, chunk)
                elif (chunk.project, chunk.sha256, chunk.size) != blob:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                        "an UploadBlob call uploads one blob: every chunk names the same project, "
                                        "sha256 and size as the first")
                if chunk.offset != partial.length:
                    context.set_trailing_metadata(((COMMITTED_OFFSET, str(partial.length)),))
                    await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                        f"chunk at offset {chunk.offset}, but the server has {partial.length} bytes "
                                        f"of blob {chunk.sha256}: send from {partial.length}")
                if partial.length + len(chunk.data) > partial.size:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                        f"chunk ends at {partial.length + len(chunk.data)}, past the blob's size "
                                        f"{partial.size}")
                # the file write and the sha256 on two threads at once: each frees the GIL, each is ~1 ms per MiB
                await asyncio.gather(loop.run_in_executor(self._io, partial.write, chunk.data),
                                     loop.run_in_executor(self._io, partial.hash, chunk.data))
                partial.wrote(len(chunk.data))
                received += len(chunk.data)
                self.received_bytes += len(chunk.data)
                if partial.length < partial.size:
                    yield pb.UploadAck(committed=partial.length)
                    continue
                try:
                    verified = await loop.run_in_executor(self._io, self._complete, chunk.project, partial)
                except OSError as exc:  # the blob store (a disk, S3) failed: the partial stays for a retry
                    log.warning("blob store failed storing artifact blob %s: %s", partial.sha256, exc)
                    await context.abort(grpc.StatusCode.UNAVAILABLE, f"the blob store failed: {exc}")
                if not verified:
                    await context.abort(grpc.StatusCode.DATA_LOSS,
                                        f"the {partial.size} bytes sent do not hash to {partial.sha256}: the file "
                                        "changed while it was read; nothing was kept")
                complete = True
                self._said(partial, blob[0], received, complete)  # before the ack: the client may look at once
                yield pb.UploadAck(committed=partial.size, complete=True)
                return
        finally:
            if partial is not None:
                await loop.run_in_executor(self._io, partial.close)
                if not complete:
                    self._said(partial, blob[0], received, complete)

    @staticmethod
    def _said(partial, project: str, received: int, complete: bool) -> None:
        log.info("artifact blob %s of %s: %d bytes received (from offset %d of %d)%s", partial.sha256[:12], project,
                 received, partial.resumed_at, partial.size, ", stored" if complete else "")

    async def _open(self, loop: asyncio.AbstractEventLoop, context: grpc.aio.ServicerContext, principal: Principal,
                    chunk: pb.BlobChunk):
        if problem := self._problem(principal, chunk.project, write=True):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED if chunk.project else
                                grpc.StatusCode.INVALID_ARGUMENT, problem)
        if not is_sha256(chunk.sha256) or not 0 <= chunk.size <= MAX_BLOB_BYTES:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"a blob is named by its sha256 (64 lowercase hex digits, not {chunk.sha256!r}) and "
                                f"has a size from 0 to {MAX_BLOB_BYTES} (not {chunk.size})")
        try:
            return await loop.run_in_executor(self._io, self.files.open_upload, chunk.project, chunk.sha256,
                                              chunk.size)
        except UploadBusy as exc:
            await context.abort(grpc.StatusCode.ABORTED, str(exc))
        except NoSpace as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))

    def _complete(self, project: str, partial) -> bool:
        """Verify a whole blob, store it and record that `project` holds it (on the I/O pool)."""
        if not partial.verify():
            return False
        self.files.store_blob(partial)
        self.catalog.record_blob(project, partial.sha256, partial.size)
        return True

    async def download_blob(self, raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.BlobChunk]:
        loop = asyncio.get_running_loop()
        principal = await self._stream_principal(context)
        request = pb.DownloadRequest()
        try:
            request.ParseFromString(raw)
        except DecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed DownloadRequest: {exc}")
        if problem := self._problem(principal, request.project, write=False):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, problem)
        owned = is_sha256(request.sha256) and await loop.run_in_executor(
            self._io, self.catalog.owned_blobs, request.project, [request.sha256])
        if not owned:
            await context.abort(grpc.StatusCode.NOT_FOUND,
                                f"project {request.project!r} holds no blob {request.sha256!r}")
        try:
            size, chunks = await loop.run_in_executor(self._io, self.files.read, request.sha256, request.offset)
        except FileNotFoundError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"blob {request.sha256} is missing from the blob store")
        offset = request.offset
        ahead = loop.run_in_executor(self._io, next, chunks, None)  # the next chunk is read while this one goes
        while (data := await ahead) is not None:
            ahead = loop.run_in_executor(self._io, next, chunks, None)
            header = pb.BlobChunk(project=request.project, sha256=request.sha256, size=size,
                                  offset=offset).SerializeToString()
            yield with_chunk_data(header, data)
            offset += len(data)
        if offset < size:
            await context.abort(grpc.StatusCode.DATA_LOSS, f"blob {request.sha256} ended at {offset} of {size} bytes")


def _check_name(name: str) -> None:
    if problem := name_problem(name):
        raise ValueError(problem)


def _manifest(request: pb.CommitRequest) -> Manifest:
    """The request as a Manifest; ValueError naming the first problem."""
    _check_name(request.name)
    if problem := name_problem(request.type, "artifact type"):
        raise ValueError(problem)
    if len(request.entries) > MAX_ENTRIES:
        raise ValueError(f"{len(request.entries)} files; an artifact version holds at most {MAX_ENTRIES}")
    if len(request.aliases) > MAX_ALIASES:
        raise ValueError(f"{len(request.aliases)} aliases; the limit is {MAX_ALIASES}")
    for alias in request.aliases:
        if alias != "latest" and (problem := alias_problem(alias)):
            raise ValueError(problem)
    if len(request.metadata_json.encode()) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is over {MAX_METADATA_BYTES} bytes of JSON")
    if len(request.description.encode()) > MAX_DESCRIPTION_BYTES:
        raise ValueError(f"description is over {MAX_DESCRIPTION_BYTES} bytes")
    try:
        metadata = metadata_text(request.metadata_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"metadata_json is not JSON: {exc}") from exc
    entries = [(e.path, e.sha256, e.size, e.ref_uri, e.ref_digest) for e in request.entries]
    seen: set[str] = set()
    for entry in entries:
        if problem := entry_problem(entry):
            raise ValueError(problem)
        if entry[0] in seen:
            raise ValueError(f"path {entry[0]!r} appears twice in the manifest")
        seen.add(entry[0])
    digest = manifest_digest(entries)
    if request.digest and request.digest != digest:
        raise ValueError(f"the manifest's digest is {digest}, not {request.digest} as the client computed")
    if request.direction not in ("", "output", "input"):
        raise ValueError(f"direction must be 'output' or 'input', not {request.direction!r}")
    return Manifest(request.project, request.name, request.type, request.description, metadata, digest, entries,
                    list(request.aliases), request.run_id, request.direction or "output")
