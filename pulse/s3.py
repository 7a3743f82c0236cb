"""A small S3 client for media blobs: whole objects in and out (PUT, HEAD, GET), signed with SigV4.

Configured from the environment, as AWS's own tools are: `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN` (optional), `AWS_REGION` (or
`AWS_DEFAULT_REGION`; default us-east-1), and `PULSE_S3_ENDPOINT` for an
S3-compatible server (MinIO, Ceph, R2, ...), addressed path-style
(`<endpoint>/<bucket>/<key>`). Without an endpoint it is AWS's regional one,
addressed virtual-hosted-style (`<bucket>.s3.<region>.amazonaws.com/<key>`).

Three calls is all the blob store needs, so this is the Signature Version 4
algorithm itself (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html)
on `http.client`, not an SDK: the ingest and the dashboard stay free of one.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import os
import re
import time
from dataclasses import dataclass
from urllib.parse import quote, urlparse

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class S3Error(OSError):
    """What S3 answered, with its error code (`NoSuchKey`, `SignatureDoesNotMatch`, `AccessDenied`, ...),
    or `Unreachable`. An OSError, as a failing disk's would be."""

    def __init__(self, what: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{what}: HTTP {status} {code}: {message}".rstrip(": "))
        self.status, self.code = status, code


@dataclass(frozen=True)
class S3Config:
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    endpoint: str = ""
    session_token: str = ""

    @classmethod
    def from_env(cls) -> S3Config:
        env = os.environ
        access_key, secret_key = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
        if not access_key or not secret_key:
            raise ValueError("an s3:// blob store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                             "(and PULSE_S3_ENDPOINT for a server other than AWS)")
        return cls(access_key, secret_key, env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                   env.get("PULSE_S3_ENDPOINT", "").rstrip("/"), env.get("AWS_SESSION_TOKEN", ""))


class S3Client:
    """One bucket's objects. Thread-safe: each request opens its own connection."""

    def __init__(self, bucket: str, config: S3Config | None = None, timeout: float = 30.0) -> None:
        self.bucket = bucket
        self.config = config or S3Config.from_env()
        self.timeout = timeout
        if self.config.endpoint:
            endpoint = urlparse(self.config.endpoint)
            if endpoint.scheme not in ("http", "https") or not endpoint.netloc:
                raise ValueError(f"PULSE_S3_ENDPOINT must be http(s)://host[:port], not {self.config.endpoint!r}")
            self._secure, self._host, self._base = endpoint.scheme == "https", endpoint.netloc, f"/{bucket}/"
        else:
            self._secure, self._host, self._base = True, f"{bucket}.s3.{self.config.region}.amazonaws.com", "/"

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._request("PUT", key, data, {"content-type": content_type})

    def exists(self, key: str) -> bool:
        try:
            self._request("HEAD", key)
        except S3Error as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def get(self, key: str, max_bytes: int = 0) -> bytes:
        """The object's bytes; S3Error `TooLarge` past `max_bytes` (when given) before reading them."""
        return self._request("GET", key, max_bytes=max_bytes)

    def _request(self, method: str, key: str, body: bytes = b"", headers: dict[str, str] | None = None,
                 max_bytes: int = 0) -> bytes:
        path = self._base + quote(key, safe="/-_.~")
        what = f"{method} s3://{self.bucket}/{key}"
        connection = (http.client.HTTPSConnection if self._secure else http.client.HTTPConnection)(
            self._host, timeout=self.timeout)
        try:
            connection.request(method, path, body=body or None, headers=self._sign(method, path, body, headers or {}))
            response = connection.getresponse()
            length = int(response.getheader("content-length") or 0)
            if response.status < 300 and max_bytes and length > max_bytes:
                raise S3Error(what, response.status, "TooLarge", f"{length} bytes, more than {max_bytes}")
            data = response.read()
        except OSError as exc:
            raise S3Error(what, 0, "Unreachable", f"{self._host}: {exc}") from exc
        finally:
            connection.close()
        if response.status >= 300:
            code = _xml_field(data, "Code") or response.reason
            raise S3Error(what, response.status, code, _xml_field(data, "Message"))
        return data

    def _sign(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        """The request's headers with SigV4's: x-amz-date, x-amz-content-sha256, Authorization."""
        config = self.config
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        signed = {"host": self._host, "x-amz-content-sha256": hashlib.sha256(body).hexdigest() if body
                  else EMPTY_SHA256, "x-amz-date": stamp}
        if config.session_token:
            signed["x-amz-security-token"] = config.session_token
        names = ";".join(sorted(signed))
        canonical = "\n".join([method, path, "", *(f"{n}:{signed[n].strip()}" for n in sorted(signed)), "",
                               names, signed["x-amz-content-sha256"]])
        scope = f"{day}/{config.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        key = f"AWS4{config.secret_key}".encode()
        for part in (day, config.region, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        authorization = (f"AWS4-HMAC-SHA256 Credential={config.access_key}/{scope}, SignedHeaders={names}, "
                         f"Signature={signature}")
        return {**headers, **signed, "authorization": authorization}


def _xml_field(data: bytes, name: str) -> str:
    """A field of S3's error document (`<Error><Code>...`), without an XML parser for two strings."""
    match = re.search(rb"<%s>(.*?)</%s>" % (name.encode(), name.encode()), data, re.S)
    return match.group(1).decode("utf-8", "replace") if match else ""


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://bucket/key`."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{url!r} is not an s3://bucket/... URL")
    return parsed.netloc, parsed.path.lstrip("/")
