"""An artifact file's bytes for the Artifacts page's download button: the ingest's DownloadBlob RPC.

The ingest serves a blob to a key that may read the project, and only if that project uploaded it
(proto/pulse/v1/artifacts.proto), so the page downloads with the session's own key and sees no more
than the key does, whether the blobs lie in a directory or a bucket. The bytes are checked against
the manifest's sha256 before the browser gets them.

Example:
    data = download_blob("127.0.0.1:50051", api_key, "mnist", sha256, size)
"""

from __future__ import annotations

import hashlib

import grpc

from pulse.channel import auth_metadata, open_channel
from pulse.v1 import artifacts_pb2 as pb
from pulse.v1 import artifacts_pb2_grpc

MAX_DOWNLOAD_BYTES = 512 << 20  # held in the dashboard's memory while the browser takes it
TIMEOUT_S = 300.0


class DownloadError(RuntimeError):
    """The ingest could not or would not send the bytes; the message is fit to show."""


def download_blob(server: str, api_key: str, project: str, sha256: str, size: int) -> bytes:
    """The `size` bytes of blob `sha256` of `project`, checked; DownloadError saying why not."""
    if size > MAX_DOWNLOAD_BYTES:
        raise DownloadError(f"{size:,} bytes is more than the dashboard serves ({MAX_DOWNLOAD_BYTES >> 20} MB): "
                            "download it with emitter.Api().artifact(...).download()")
    if not server:
        raise DownloadError("no ingest to download from (set PULSE_SERVER)")
    data = bytearray()
    digest = hashlib.sha256()
    try:
        with open_channel(server) as channel:
            stub = artifacts_pb2_grpc.ArtifactsStub(channel)
            request = pb.DownloadRequest(project=project, sha256=sha256, offset=0)
            for chunk in stub.DownloadBlob(request, metadata=auth_metadata(api_key), timeout=TIMEOUT_S):
                data += chunk.data
                digest.update(chunk.data)
    except grpc.RpcError as exc:
        raise DownloadError(f"the ingest refused the download: {exc.code().name}: {exc.details()}") from None
    if len(data) != size or digest.hexdigest() != sha256:
        raise DownloadError(f"the ingest sent {len(data):,} bytes that are not the file's ({size:,} bytes, "
                            f"sha256 {sha256[:12]}…)")
    return bytes(data)
