"""Media blobs in an S3 bucket: whole objects in and out (put, exists, get), through boto3.

Configured from the environment, as AWS's own tools are: credentials from
boto3's usual chain (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, with
`AWS_SESSION_TOKEN` when temporary; else `AWS_PROFILE` / `~/.aws`, a container
or instance role, web identity), `AWS_REGION` (or `AWS_DEFAULT_REGION`; default
us-east-1), and `PULSE_S3_ENDPOINT` for an S3-compatible server (MinIO, Ceph,
R2, ...), addressed path-style (`<endpoint>/<bucket>/<key>`). Without an
endpoint it is AWS's own, addressed as boto3 addresses it (virtual-hosted).

boto3 is imported here, on the first S3Client, never before: only a process
given an s3:// blob URL pays for it (about a quarter of a second), and
`import emitter` never does.

Example::

    client = S3Client("media")            # settings from the environment
    client.put("pulse/ab/ab12.png", data, "image/png")
    assert client.get("pulse/ab/ab12.png", max_bytes=32 << 20) == data
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

NO_CREDENTIALS = ("an s3:// blob store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or another AWS "
                  "credential source (AWS_PROFILE, an instance role), and PULSE_S3_ENDPOINT for a server "
                  "other than AWS")
CHUNK = 1 << 20
HEAD_HINTS = {403: "the keys are wrong, or may not read this bucket (a HEAD's answer says no more)"}


class S3Error(OSError):
    """What S3 answered, with its error code (`NoSuchKey`, `SignatureDoesNotMatch`, `AccessDenied`, ...),
    or `Unreachable`, or `TooLarge`. An OSError, as a failing disk's would be, so callers treat both alike."""

    def __init__(self, what: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{what}: HTTP {status} {code}: {message}".rstrip(": "))
        self.status, self.code = status, code


@dataclass(frozen=True)
class S3Config:
    """Where the bucket is and, optionally, whose keys sign the requests (empty: boto3's credential chain)."""

    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    endpoint: str = ""
    session_token: str = ""
    profile: str = ""  # of ~/.aws/credentials and ~/.aws/config, when no keys are given

    @classmethod
    def from_env(cls) -> S3Config:
        env = os.environ
        # The keys and the profile are read here, not left to boto3's chain alone, so that they are part
        # of the cached client's identity (_boto_client): new settings in the environment make a new client.
        return cls(env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", ""),
                   env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                   env.get("PULSE_S3_ENDPOINT", "").rstrip("/"), env.get("AWS_SESSION_TOKEN", ""),
                   env.get("AWS_PROFILE", ""))


class S3Client:
    """One bucket's objects. Thread-safe (boto3's clients are); one client, and its connection pool,
    is shared by every S3Client with the same settings."""

    def __init__(self, bucket: str, config: S3Config | None = None, timeout: float = 30.0) -> None:
        """ValueError, in one line, for settings that cannot work: no credentials, a malformed endpoint."""
        self.bucket = bucket
        self.config = config or S3Config.from_env()
        self._s3 = _boto_client(self.config, timeout)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._call("PUT", key, "put_object", Body=data, ContentType=content_type)

    def exists(self, key: str) -> bool:
        try:
            self._call("HEAD", key, "head_object")
        except S3Error as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def get(self, key: str, max_bytes: int = 0) -> bytes:
        """The object's bytes, read in chunks; S3Error `TooLarge` past `max_bytes` (when given), as soon
        as the size or the bytes read say so, so an oversized object is never held whole."""
        what = f"GET s3://{self.bucket}/{key}"
        response = self._call("GET", key, "get_object")
        body, length = response["Body"], response.get("ContentLength")
        try:
            if max_bytes and length is not None and length > max_bytes:
                raise S3Error(what, 200, "TooLarge", f"{length} bytes, more than {max_bytes}")
            chunks, size = [], 0
            for chunk in _read_chunks(what, body):
                size += len(chunk)
                if max_bytes and size > max_bytes:
                    raise S3Error(what, 200, "TooLarge", f"more than {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            body.close()

    def _call(self, method: str, key: str, operation: str, **params: Any) -> dict:
        """boto3's `operation` on `key`; its errors as one S3Error naming the request and S3's answer."""
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as Unconnected  # not the builtin of that name

        what = f"{method} s3://{self.bucket}/{key}"
        try:
            return getattr(self._s3, operation)(Bucket=self.bucket, Key=key, **params)
        except ClientError as exc:
            error, meta = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {})
            status = int(meta.get("HTTPStatusCode") or 0)
            code, message = str(error.get("Code") or status), error.get("Message", "")
            if code.isdigit():  # a HEAD's answer has no body: boto3 gives the status as code, its reason as message
                code, message = message or code, HEAD_HINTS.get(status, "")
            raise S3Error(what, status, code, message) from exc
        except (Unconnected, HTTPClientError) as exc:  # refused, timed out, reset, TLS: after boto3's retries
            raise S3Error(what, 0, "Unreachable", str(exc)) from exc
        except BotoCoreError as exc:
            raise S3Error(what, 0, type(exc).__name__, str(exc)) from exc


def _read_chunks(what: str, body: Any):
    """The body's chunks; a connection lost halfway is an S3Error `Unreachable`, like one lost before."""
    from botocore.exceptions import BotoCoreError

    try:
        yield from body.iter_chunks(CHUNK)
    except (BotoCoreError, OSError) as exc:
        raise S3Error(what, 0, "Unreachable", str(exc)) from exc


@functools.lru_cache(maxsize=8)
def _boto_client(config: S3Config, timeout: float) -> Any:
    """A boto3 S3 client for these settings: made once (it costs a tenth of a second), shared by threads."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    if config.endpoint:
        endpoint = urlparse(config.endpoint)
        if endpoint.scheme not in ("http", "https") or not endpoint.netloc or endpoint.path not in ("", "/"):
            raise ValueError(f"PULSE_S3_ENDPOINT must be http(s)://host[:port], not {config.endpoint!r}")
    if bool(config.access_key) != bool(config.secret_key):
        raise ValueError(NO_CREDENTIALS)
    try:
        session = boto3.session.Session(aws_access_key_id=config.access_key or None,
                                        aws_secret_access_key=config.secret_key or None,
                                        aws_session_token=config.session_token or None, region_name=config.region,
                                        profile_name=None if config.access_key else config.profile or None)
        if session.get_credentials() is None:
            raise ValueError(NO_CREDENTIALS)
    except BotoCoreError as exc:  # a named profile that is not there, a broken ~/.aws/config, ...
        raise ValueError(f"an s3:// blob store's credentials: {exc}") from exc
    settings = Config(
        connect_timeout=min(timeout, 10.0), read_timeout=timeout,
        # "standard" retries throttling, 5xx and dropped connections, 3 tries with jittered backoff: enough
        # for a blip, and short, since a failed batch is resent by its emitter anyway.
        retries={"mode": "standard", "max_attempts": 3},
        # as many pooled connections as the ingest has threads putting blobs at once
        max_pool_connections=32,
        # S3-compatible servers are addressed <endpoint>/<bucket>/<key>: MinIO and Ceph need it, and a
        # bucket name need not resolve in DNS
        s3={"addressing_style": "path"} if config.endpoint else None,
        # the CRC checksums boto3 adds by default since 1.36 are refused by several S3-compatible servers;
        # Pulse's blobs are named by their sha256 and checked against it when read
        request_checksum_calculation="when_required" if config.endpoint else "when_supported",
        response_checksum_validation="when_required" if config.endpoint else "when_supported",
    )
    return session.client("s3", endpoint_url=config.endpoint or None, config=settings)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://bucket/key`."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{url!r} is not an s3://bucket/... URL")
    return parsed.netloc, parsed.path.lstrip("/")
