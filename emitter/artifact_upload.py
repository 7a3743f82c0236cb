"""The emitter's side of the Artifacts RPCs: blobs up and down in 4 MiB chunks, resumable, with bounded memory.

Uploading a blob: HaveBlobs says whether the project has it (then nothing is
sent) or how many bytes an interrupted upload left; the file is streamed from
there, one chunk read at a time; each chunk is acknowledged, and at most
`WINDOW_BYTES` may be sent and not yet acknowledged (gRPC's own buffers are no
bound: under a slow server they grew past 700 MB), so memory stays flat whatever
the size and speed; the last ack says the server verified the sha256 and stored it.
After a disconnect or an ingest restart the next attempt asks HaveBlobs again and
resumes from the server's committed offset. Downloads resume the same way from
the partial file they write, and rename it into place only once its sha256 is
right.

Errors a retry can fix (the server away or busy) are retried with backoff until
`stop` is set or the deadline passes; the others raise ArtifactError naming why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from pulse.artifact_manifest import with_chunk_data
from pulse.channel import auth_metadata, open_channel
from pulse.v1 import artifacts_pb2 as pb
from pulse.wire import COMMITTED_OFFSET

log = logging.getLogger("pulse")
SERVICE = "/pulse.v1.Artifacts/"
CHUNK_BYTES = 4 << 20
WINDOW_BYTES = 4 * CHUNK_BYTES  # sent, not yet acknowledged, per upload
HAVE_BATCH = 10_000
RETRY = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
         grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.CANCELLED}
UNARY_TIMEOUT_S = 60.0


class ArtifactError(RuntimeError):
    """The server refused an artifact call, and retrying will not help (a key, bad input, changed bytes)."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class Stopped(Exception):
    """The caller stopped waiting (finish()'s timeout): nothing is lost, the job stays on disk."""


class ArtifactClient:
    """One channel to the ingest's Artifacts service, for one key."""

    def __init__(self, server: str, api_key: str = "", tls_ca: str = "", route: str = "",
                 stop: threading.Event | None = None, deadline: float | None = None) -> None:
        self.server = server
        self._channel = open_channel(server, tls_ca)
        self._metadata = auth_metadata(api_key) + ((("x-pulse-artifact", route),) if route else ())
        self._stop = stop or threading.Event()
        self.deadline = deadline  # time.monotonic() after which retries give up
        self.sent_bytes = 0  # blob bytes sent, resends included
        self.received_bytes = 0
        self._call: Any = None

    def close(self) -> None:
        call = self._call
        if call is not None:
            call.cancel()
        self._channel.close()

    def _unary(self, method: str, request: Any, reply: type) -> Any:
        rpc = self._channel.unary_unary(SERVICE + method, request_serializer=type(request).SerializeToString,
                                        response_deserializer=reply.FromString)
        return self._retrying(lambda: rpc(request, timeout=UNARY_TIMEOUT_S, metadata=self._metadata), method)

    def _retrying(self, attempt: Callable[[], Any], what: str) -> Any:
        backoff = 0.2
        while True:
            try:
                return attempt()
            except grpc.RpcError as exc:
                code = exc.code()
                if code not in RETRY or (code == grpc.StatusCode.CANCELLED and self._stop.is_set()):
                    raise ArtifactError(f"{what}: {exc.details() or code.name}", code) from None
                self._pause(backoff, f"{what}: {code.name}: {exc.details()}")
                backoff = min(backoff * 2, 2.0)

    def _pause(self, seconds: float, why: str) -> None:
        if self.deadline is not None and time.monotonic() + seconds > self.deadline:
            raise Stopped(why)
        if self._stop.wait(seconds):
            raise Stopped(why)

    # -- RPCs -----------------------------------------------------------------

    def have(self, project: str, shas: list[str]) -> dict[str, tuple[bool, int]]:
        """sha -> (the project holds it, bytes of an interrupted upload)."""
        found: dict[str, tuple[bool, int]] = {}
        for i in range(0, len(shas), HAVE_BATCH):
            reply = self._unary("HaveBlobs", pb.HaveBlobsRequest(project=project, sha256=shas[i:i + HAVE_BATCH]),
                                pb.HaveBlobsReply)
            found.update({b.sha256: (b.present, b.offset) for b in reply.blobs})
        return found

    def commit(self, request: pb.CommitRequest) -> pb.ArtifactVersion:
        return self._unary("CommitArtifact", request, pb.ArtifactVersion)

    def resolve(self, project: str, name: str, ref: str) -> pb.ArtifactVersion:
        return self._unary("ResolveArtifact", pb.ArtifactRef(project=project, name=name, ref=ref), pb.ArtifactVersion)

    def use(self, project: str, name: str, ref: str, run_project: str, run_id: str) -> pb.ArtifactVersion:
        request = pb.UseRequest(artifact=pb.ArtifactRef(project=project, name=name, ref=ref),
                                run_project=run_project, run_id=run_id)
        return self._unary("UseArtifact", request, pb.ArtifactVersion)

    # -- blobs ----------------------------------------------------------------

    def upload(self, project: str, sha256: str, size: int, path: Path, offset: int | None = None) -> int:
        """Send one blob from `path` unless the project holds it; the bytes sent. ArtifactError if the file
        no longer holds those bytes (changed or deleted since it was added)."""
        rpc = self._channel.stream_stream(SERVICE + "UploadBlob", request_serializer=None,
                                          response_deserializer=pb.UploadAck.FromString)
        sent_before, backoff = self.sent_bytes, 0.2
        while True:
            if offset is None:
                present, offset = self.have(project, [sha256])[sha256]
                if present:
                    return self.sent_bytes - sent_before
            _check_file(path, size, sha256)
            window = _Window(offset)
            try:
                call = self._call = rpc(self._chunks(project, sha256, size, path, offset, window),
                                        metadata=self._metadata)
                for ack in call:
                    window.ack(ack.committed)
                    if ack.complete:
                        return self.sent_bytes - sent_before
                    backoff = 0.2  # progress: the next interruption starts its backoff afresh
                if self._stop.is_set():
                    raise Stopped("stopped during an upload")
                offset = None  # the stream ended early: ask where the server is
            except grpc.RpcError as exc:
                code = exc.code()
                committed = _trailer(exc, COMMITTED_OFFSET)
                if code == grpc.StatusCode.FAILED_PRECONDITION and committed is not None:
                    offset = committed
                    continue
                if code == grpc.StatusCode.DATA_LOSS:
                    raise ArtifactError(f"{path}: {exc.details()}", code) from None
                if code not in RETRY or (code == grpc.StatusCode.CANCELLED and self._stop.is_set()):
                    if self._stop.is_set():
                        raise Stopped("stopped during an upload") from None
                    raise ArtifactError(f"uploading {path}: {exc.details() or code.name}", code) from None
                self._pause(backoff, f"upload of {path.name}: {code.name}: {exc.details()}")
                backoff = min(backoff * 2, 2.0)
                offset = None
            finally:
                window.close()
                self._call = None

    def _chunks(self, project: str, sha256: str, size: int, path: Path, offset: int,
                window: _Window) -> Iterator[bytes]:
        with open(path, "rb") as f:
            f.seek(offset)
            while window.room(offset, self._stop):
                data = f.read(min(CHUNK_BYTES, size - offset))
                header = pb.BlobChunk(project=project, sha256=sha256, size=size, offset=offset).SerializeToString()
                yield with_chunk_data(header, data)
                self.sent_bytes += len(data)
                offset += len(data)
                if offset >= size or not data:
                    return

    def download(self, project: str, sha256: str, size: int, target: Path) -> None:
        """Write blob `sha256` to `target`, resuming a partial download; ArtifactError if the bytes are wrong."""
        rpc = self._channel.unary_stream(SERVICE + "DownloadBlob",
                                         request_serializer=pb.DownloadRequest.SerializeToString,
                                         response_deserializer=pb.BlobChunk.FromString)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{sha256[:12]}.part")
        backoff = 0.2
        digest, offset = hashlib.sha256(), 0
        # "r+b" over a download cut short earlier (keep what it got), else "wb": an append-mode or
        # read-write buffered file costs a fifth of the speed on 4 MiB writes
        with open(partial, "r+b" if partial.exists() else "wb") as f:
            if f.mode == "rb+":
                while block := f.read(CHUNK_BYTES):
                    digest.update(block)
                offset = f.tell()
                if offset > size:
                    f.seek(0)
                    f.truncate(0)
                    digest, offset = hashlib.sha256(), 0
            while offset < size:
                try:
                    call = self._call = rpc(pb.DownloadRequest(project=project, sha256=sha256, offset=offset),
                                            metadata=self._metadata)
                    for chunk in call:
                        f.write(chunk.data)
                        digest.update(chunk.data)  # on this thread: a second one only adds GIL contention
                        offset += len(chunk.data)
                        self.received_bytes += len(chunk.data)
                        backoff = 0.2
                    if offset < size:
                        raise ArtifactError(f"blob {sha256} ended at {offset} of {size} bytes")
                except grpc.RpcError as exc:
                    code = exc.code()
                    if code not in RETRY:
                        raise ArtifactError(f"downloading {target.name}: {exc.details() or code.name}", code) from None
                    self._pause(backoff, f"download of {target.name}: {code.name}")
                    backoff = min(backoff * 2, 2.0)
                finally:
                    self._call = None
            f.flush()
            os.fsync(f.fileno())
        if digest.hexdigest() != sha256:
            partial.unlink()
            raise ArtifactError(f"{target}: the bytes downloaded hash to {digest.hexdigest()}, not {sha256}; "
                                "nothing was kept")
        os.replace(partial, target)


class _Window:
    """How far the server has acknowledged one upload, so the reader waits instead of outrunning it."""

    def __init__(self, offset: int) -> None:
        self._acked = offset
        self._closed = False
        self._changed = threading.Condition()

    def ack(self, committed: int) -> None:
        with self._changed:
            self._acked = max(self._acked, committed)
            self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def room(self, offset: int, stop: threading.Event) -> bool:
        """Wait until a chunk at `offset` fits in the window; False once the call ended or `stop` is set."""
        with self._changed:
            while offset - self._acked >= WINDOW_BYTES and not self._closed and not stop.is_set():
                self._changed.wait(0.1)
            return not self._closed and not stop.is_set()


def _check_file(path: Path, size: int, sha256: str) -> None:
    """An upload from a file the user may have changed: at least its size must still be right."""
    try:
        actual = path.stat().st_size
    except FileNotFoundError:
        raise ArtifactError(f"{path} was deleted before its upload (blob {sha256[:12]}): add it again and log a new "
                            "version") from None
    if actual != size:
        raise ArtifactError(f"{path} changed since it was added ({actual} bytes, added with {size}); add it again "
                            "and log a new version")


def _trailer(exc: grpc.RpcError, name: str) -> int | None:
    trailers = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
    for key, value in trailers or ():
        if key == name and value.isdigit():
            return int(value)
    return None
