"""Reading media bytes for the Media page, straight from the ingest's blob store.

Media rows hold a URI; the ingest writes the bytes content-addressed to a directory
(`file:///<root>/<sha[:2]>/<sha>.<ext>`) or a bucket (`s3://bucket/<prefix>/<sha[:2]>/<sha>.<ext>`),
see ingest/blobs.py. The dashboard reads a directory when it can see it (the embedded default:
`pulse up` on one machine, or a directory every machine mounts) and a bucket with the same
`AWS_*` and `PULSE_S3_ENDPOINT` settings as the ingest. What it shows must be what was logged:
the bytes' sha256 has to match the row's, and with `PULSE_BLOB_URL` set the blob has to lie
inside that store.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from pulse.s3 import S3Client, S3Error, parse_s3_url

MAX_BYTES = 32 << 20


class BlobUnavailable(LookupError):
    """Why the bytes of a media row cannot be shown; the message is fit for the page."""


def read_blob(uri: str, sha256: str, root: str | None = None) -> bytes:
    """The bytes `uri` names, checked against `sha256`; BlobUnavailable says why not."""
    parsed = urlparse(uri)
    root = root if root is not None else os.environ.get("PULSE_BLOB_URL", "")
    if parsed.scheme == "s3":
        data = _read_s3(uri, root)
    elif parsed.scheme in ("file", ""):
        data = _read_file(Path(unquote(parsed.path)).resolve(), root)
    else:
        raise BlobUnavailable(f"{parsed.scheme}:// media are not readable by the dashboard")
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise BlobUnavailable(f"{uri} does not hold the logged bytes (sha256 mismatch)")
    return data


def _read_s3(uri: str, root: str) -> bytes:
    bucket, key = parse_s3_url(uri)
    if root and not uri.startswith(root.rstrip("/") + "/"):
        raise BlobUnavailable(f"{uri} is outside the blob store {root}")
    try:
        return S3Client(bucket).get(key, max_bytes=MAX_BYTES)
    except ValueError as exc:  # settings that cannot work: no credentials, a malformed endpoint
        raise BlobUnavailable(f"cannot read {uri}: {exc}") from exc
    except S3Error as exc:
        raise BlobUnavailable(f"cannot read {uri}: {exc}") from exc


def _read_file(path: Path, root: str) -> bytes:
    if root:
        parsed_root = urlparse(root)
        base = Path(unquote(parsed_root.path) if parsed_root.scheme == "file" else root).expanduser().resolve()
        if not path.is_relative_to(base):
            raise BlobUnavailable(f"{path} is outside the blob store {base}")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise BlobUnavailable(f"{path} is larger than {MAX_BYTES >> 20} MB")
        data = path.read_bytes()
    except OSError as exc:
        raise BlobUnavailable(f"cannot read {path}: {exc.strerror or exc}. The dashboard reads media from "
                              "the ingest's blob directory; on another machine, mount it at the same path") from exc
    return data
