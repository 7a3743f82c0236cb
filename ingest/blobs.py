"""Where media bytes live: a content-addressed blob store; ClickHouse keeps only the metadata and the URI.

A blob's name is the sha256 of its bytes, so the same image logged a thousand
times is stored once, and a retried batch rewrites nothing. The store is
named by a URL (`--blobs`, `PULSE_BLOB_URL`):

- `file:///path` or a plain path: a directory, `<root>/<sha[:2]>/<sha>.<ext>`, the
  ending picked by mime from the shared media definition (`pulse.media_schema.EXTENSIONS`:
  `.wav`, `.mp4`, `.html`, `.glb`, ...), JSON documents (tables, plots) `.json`, and `.bin`
  for any other bytes (artifact files).
  The embedded default is `<data dir>/blobs`; with a ClickHouse server, `blobs`
  in the per-user data directory (`pulse.startup.default_data_dir()`); for
  several ingest replicas, a directory they all mount.
- `s3://bucket/prefix`: an S3 bucket or an S3-compatible server's,
  `<prefix>/<sha[:2]>/<sha>.<ext>`; credentials (boto3's chain), region and
  endpoint (`PULSE_S3_ENDPOINT`) from the environment, see `pulse/s3.py`.

Blobs are written (fsynced, or acknowledged by S3) before the batch's rows are
buffered, so an acknowledged media row always has its bytes.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from pulse.media_schema import EXTENSIONS, PLOT_MIME, PLOTLY_MIME, TABLE_MIME
from pulse.s3 import S3Client, parse_s3_url
from pulse.startup import default_data_dir

log = logging.getLogger(__name__)


def _endings() -> dict[str, str]:
    """mime -> a blob's file ending: the first ending the media definition lists for it (`.jpg`
    before `.jpeg`), so a blob opens in the right program when someone browses the store."""
    endings: dict[str, str] = {}
    for ending, mime in EXTENSIONS.items():
        endings.setdefault(mime, ending)
    for mime in (TABLE_MIME, PLOT_MIME, PLOTLY_MIME):  # JSON documents without a file ending of their own
        endings.setdefault(mime, ".json")
    return endings


ENDINGS = _endings()


def blob_name(sha256: str, mime: str) -> str:
    """`<sha[:2]>/<sha>.<ending>`: where a blob lives under a store's root or prefix."""
    return f"{sha256[:2]}/{sha256}{ENDINGS.get(mime, '.bin')}"


class BlobStore(Protocol):
    url: str

    def put(self, sha256: str, data: bytes, mime: str) -> str:
        """Store `data` under its hash (a no-op when it is there already); return its URI."""
        ...

    def get(self, uri: str) -> bytes: ...


class DirectoryBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def path(self, sha256: str, mime: str) -> Path:
        return self.root / blob_name(sha256, mime)

    def put(self, sha256: str, data: bytes, mime: str) -> str:
        path = self.path(sha256, mime)
        if not path.exists():
            path.parent.mkdir(exist_ok=True)
            # write aside and rename: readers never see half a blob, and concurrent writers of the
            # same content (two streams logging one image) each rename a whole copy into place
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            with open(temporary, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, path)
        return path.as_uri()

    def get(self, uri: str) -> bytes:
        path = Path(unquote(urlparse(uri).path)).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"{uri} is not in this blob store ({self.url})")
        return path.read_bytes()


class S3BlobStore:
    def __init__(self, url: str, client: S3Client | None = None) -> None:
        bucket, prefix = parse_s3_url(url)
        self.client = client or S3Client(bucket)
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def key(self, sha256: str, mime: str) -> str:
        name = blob_name(sha256, mime)
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, sha256: str, data: bytes, mime: str) -> str:
        key = self.key(sha256, mime)
        if not self.client.exists(key):  # the same image logged again costs a HEAD, not an upload
            self.client.put(key, data, mime)
        return f"s3://{self.client.bucket}/{key}"

    def get(self, uri: str) -> bytes:
        bucket, key = parse_s3_url(uri)
        if bucket != self.client.bucket or not key.startswith(self.prefix):
            raise ValueError(f"{uri} is not in this blob store ({self.url})")
        return self.client.get(key)


def open_blob_store(url: str) -> BlobStore:
    """The blob store a URL names (see the module docstring)."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return S3BlobStore(url)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"blob store URL {url!r} must be a path, file:///path or s3://bucket/prefix")
    return DirectoryBlobStore(unquote(parsed.path) if parsed.scheme == "file" else url)


def default_blob_url(clickhouse_url: str) -> str:
    """`PULSE_BLOB_URL`, else `blobs` in the embedded store's data directory, else `blobs` in the
    per-user data directory (`$PULSE_DATA`, `$XDG_DATA_HOME/pulse` or `~/.local/share/pulse`), the
    same whichever directory the ingest starts in."""
    if os.environ.get("PULSE_BLOB_URL"):
        return os.environ["PULSE_BLOB_URL"]
    if clickhouse_url.startswith("chdb:"):
        return os.path.join(unquote(urlparse(clickhouse_url).path) or ".", "blobs")
    local = os.path.abspath(os.path.join(os.path.expanduser(default_data_dir()), "blobs"))
    log.warning("media bytes go to %s; with several ingest replicas set PULSE_BLOB_URL to a directory "
                "they all mount", local)
    return local
