"""What an artifact's manifest may hold, and its digest: one set of rules for the emitter and the ingest.

Names and types follow W&B's rule (letters, digits, `-`, `_`, `.`; at most 128
characters). Aliases may be anything printable but `/` and `:`, and never `vN`,
which names a version. A path inside an artifact is relative and `/`-separated,
with no empty, `.` or `..` part (so no download escapes its root) and no control
characters. References are `s3://` and `file://` URIs.

The manifest digest. W&B's is an md5 over "wandb-artifact-manifest-v1\\n" and the
sorted "path:digest\\n" lines of its entries. Pulse's is a sha256 over the
canonical manifest: the line "pulse-artifact-manifest-v1\\n", then one line per
entry in the byte order of the paths' UTF-8,

    path TAB sha256 TAB size TAB ref_uri TAB ref_digest LF

(for a reference sha256 is empty and ref_digest is its ETag or sha256, when known; for a
file ref_uri and ref_digest are empty). No
field may hold a tab or a newline, so the encoding is unambiguous. As in W&B,
the description, metadata and aliases are not part of it: the same files with
other metadata are the same version.

Standard library only: `emitter` and `ingest` both import it.

    manifest_digest([("model.pt", "9f86d0...", 12, "", "")])
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

HEADER = b"pulse-artifact-manifest-v1\n"
MAX_NAME_CHARS = 128
MAX_PATH_BYTES = 1024
MAX_ENTRIES = 100_000  # one version's files: the manifest travels in one message
MAX_ALIASES = 64
MAX_METADATA_BYTES = 1 << 20
MAX_DESCRIPTION_BYTES = 64 << 10
REFERENCE_SCHEMES = ("s3", "file")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_VERSION = re.compile(r"v\d+")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile("[\x00-\x1f\x7f]")

Entry = tuple[str, str, int, str, str]  # (path, sha256, size, ref_uri, ref_digest)


def name_problem(value: object, what: str = "artifact name") -> str | None:
    """Why `value` is no artifact name (or type), or None."""
    if not isinstance(value, str) or not value:
        return f"{what} must be a non-empty string, not {value!r}"
    if len(value) > MAX_NAME_CHARS:
        return f"{what} is {len(value)} characters long; the limit is {MAX_NAME_CHARS}"
    if not _NAME.fullmatch(value):
        return f"{what} {value!r} may hold only letters, digits, '-', '_' and '.'"
    return None


def alias_problem(value: object) -> str | None:
    """Why `value` cannot be an alias, or None."""
    if not isinstance(value, str) or not value:
        return f"an alias must be a non-empty string, not {value!r}"
    if len(value) > MAX_NAME_CHARS:
        return f"alias {value[:40]!r}... is {len(value)} characters long; the limit is {MAX_NAME_CHARS}"
    if "/" in value or ":" in value or _CONTROL.search(value):
        return f"alias {value!r} may not hold '/', ':' or control characters"
    if _VERSION.fullmatch(value):
        return f"alias {value!r} looks like a version; v0, v1, ... are given by the server"
    return None


def path_problem(path: object) -> str | None:
    """Why `path` cannot name a file inside an artifact, or None."""
    if not isinstance(path, str) or not path:
        return f"a path inside an artifact must be a non-empty string, not {path!r}"
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        return f"path {path[:60]!r}... is longer than {MAX_PATH_BYTES} bytes"
    if _CONTROL.search(path):
        return f"path {path!r} holds control characters"
    if path.startswith("/") or "\\" in path:
        return f"path {path!r} must be relative and '/'-separated"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"path {path!r} has an empty, '.' or '..' part"
    return None


def entry_problem(entry: Entry) -> str | None:
    """Why one manifest entry is malformed, or None."""
    path, sha256, size, ref_uri, ref_digest = entry
    if problem := path_problem(path):
        return problem
    if size < 0:
        return f"{path}: size {size} is negative"
    if ref_uri:
        scheme = ref_uri.partition("://")[0]
        if scheme not in REFERENCE_SCHEMES or "://" not in ref_uri:
            return f"{path}: reference {ref_uri!r} must be an s3:// or file:// URI"
        if sha256:
            return f"{path}: a reference names no blob (its checksum goes in ref_digest)"
        if _CONTROL.search(ref_uri) or _CONTROL.search(ref_digest):
            return f"{path}: the reference holds control characters"
        return None
    if not _HEX64.fullmatch(sha256):
        return f"{path}: sha256 {sha256!r} is not 64 lowercase hex digits"
    if ref_digest:
        return f"{path}: a file that is not a reference has no ref_digest"
    return None


def is_sha256(value: str) -> bool:
    return bool(_HEX64.fullmatch(value))


def manifest_digest(entries: Iterable[Entry]) -> str:
    """The sha256 of the canonical manifest (see the module docstring), as hex."""
    digest = hashlib.sha256(HEADER)
    for path, sha256, size, ref_uri, ref_digest in sorted(entries, key=lambda e: e[0].encode("utf-8")):
        digest.update(f"{path}\t{sha256}\t{int(size)}\t{ref_uri}\t{ref_digest}\n".encode())
    return digest.hexdigest()


def parse_version(ref: str) -> int | None:
    """3 for "v3"; None for an alias."""
    return int(ref[1:]) if _VERSION.fullmatch(ref) else None


CHUNK_DATA_TAG = bytes([5 << 3 | 2])  # BlobChunk.data: field 5, length-delimited (proto/pulse/v1/artifacts.proto)


def with_chunk_data(header: bytes, data: bytes) -> bytes:
    """A serialized BlobChunk: `header` (its other fields, serialized) followed by `data` as field 5.

    Protobuf would copy a 4 MiB chunk three times (into the message, out of it, into the
    result); this is one copy, which is a tenth of an upload's CPU.
    """
    n, length = len(data), bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return b"".join((header, CHUNK_DATA_TAG, length, data))

