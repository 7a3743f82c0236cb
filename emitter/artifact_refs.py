"""References in artifacts: s3:// objects and prefixes, file:// paths, recorded and fetched but never uploaded.

An S3 reference keeps the object's ETag and size (one HEAD, or the listing of a
prefix: cheap, nothing read), so a download that finds another ETag refuses it
as W&B does. A file reference keeps the file's sha256. S3 goes through Pulse's
S3 settings (pulse/s3.py: boto3's credential chain, PULSE_S3_ENDPOINT), imported
only when an s3:// reference is used, so `import emitter` never loads boto3.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

DEFAULT_MAX_OBJECTS = 10_000  # W&B's default for a prefix


def s3_references(uri: str, name: str | None, checksum: bool,
                  max_objects: int | None) -> list[tuple[str, int, str, str]]:
    """(path, size, ETag, uri) for an s3:// object, or for each object under a prefix."""
    from pulse.s3 import S3Client, S3Error, parse_s3_url

    bucket, key = parse_s3_url(uri)
    if not checksum:
        return [(name or key.rsplit("/", 1)[-1] or bucket, 0, "", uri)]
    client = S3Client(bucket)
    if key and not key.endswith("/"):
        try:
            # pulse/s3.py's _call maps boto3's errors to one S3Error naming the request; its HEAD gives the ETag.
            head = client._call("HEAD", key, "head_object")
            return [(name or key.rsplit("/", 1)[-1], int(head["ContentLength"]), head["ETag"].strip('"'), uri)]
        except S3Error as exc:
            if exc.status != 404:
                raise
    prefix = key.rstrip("/") + "/" if key else ""
    found = []
    pages = client._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix):]
            if not relative or relative.endswith("/"):
                continue
            found.append(((name + "/" if name else "") + relative, int(item["Size"]), item["ETag"].strip('"'),
                          f"s3://{bucket}/{item['Key']}"))
            if len(found) >= (max_objects or DEFAULT_MAX_OBJECTS):
                return found
    if not found:
        raise ValueError(f"add_reference(): {uri} is no object and no prefix with objects")
    return found


def fetch_reference(ref_uri: str, ref_digest: str, target: Path) -> None:
    """Copy a reference's bytes to `target`; ValueError when they are not what was recorded."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.part")
    scheme = urlparse(ref_uri).scheme
    if scheme == "file":
        source = Path(unquote(urlparse(ref_uri).path))
        if not source.is_file():
            raise FileNotFoundError(f"reference {ref_uri} is not on this machine")
        digest = hashlib.sha256()
        with open(source, "rb") as src, open(temporary, "wb") as out:
            while block := src.read(4 << 20):
                digest.update(block)
                out.write(block)
        if ref_digest and digest.hexdigest() != ref_digest:
            temporary.unlink()
            raise ValueError(f"reference {ref_uri} changed since it was logged (sha256 {digest.hexdigest()}, "
                             f"logged {ref_digest})")
    elif scheme == "s3":
        from pulse.s3 import S3Client, parse_s3_url

        bucket, key = parse_s3_url(ref_uri)
        client = S3Client(bucket)
        head = client._call("HEAD", key, "head_object")
        if ref_digest and head["ETag"].strip('"') != ref_digest:
            raise ValueError(f"reference {ref_uri} changed since it was logged (ETag {head['ETag']}, "
                             f"logged {ref_digest})")
        body = client._call("GET", key, "get_object")["Body"]
        try:
            with open(temporary, "wb") as out:
                shutil.copyfileobj(body, out, 4 << 20)
        finally:
            body.close()
    else:
        raise ValueError(f"cannot fetch reference {ref_uri!r}: only file:// and s3:// are known")
    os.replace(temporary, target)
