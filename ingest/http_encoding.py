"""The encodings of ClickHouse's HTTP interface: its compressed blocks and HTTP compression.

- `compress=1` asks for ClickHouse's own compressed blocks, which JDBC drivers (DBeaver) ask for
  by default: a 16-byte CityHash128 checksum, the method byte (0x82 for LZ4), the compressed and
  decompressed sizes, then one LZ4 block. The checksum is ClickHouse's CityHash 1.0.2 variant,
  so it comes from `clickhouse-cityhash`, the package ClickHouse's own Python driver uses; the
  layout was checked against a column file chDB wrote.
- `enable_http_compression=1` with Accept-Encoding asks for ordinary HTTP compression.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable

_UINT64 = (1 << 64) - 1
BLOCK_BYTES = 1 << 20  # ClickHouse's max_compress_block_size
_LZ4 = 0x82
_NONE = 0x02
_ZSTD = 0x90


class EncodingError(ValueError):
    """A body this server cannot decode; the message says which and why."""


def compress_blocks(data: bytes) -> bytes:
    """`data` as ClickHouse's compressed blocks (what `compress=1` answers), LZ4 each."""
    import lz4.block
    from clickhouse_cityhash.cityhash import CityHash128

    out = bytearray()
    for start in range(0, len(data), BLOCK_BYTES):
        chunk = data[start:start + BLOCK_BYTES]
        packed = lz4.block.compress(chunk, store_size=False)
        block = bytes([_LZ4]) + struct.pack("<II", len(packed) + 9, len(chunk)) + packed
        digest = CityHash128(block)
        out += struct.pack("<QQ", (digest >> 64) & _UINT64, digest & _UINT64) + block
    return bytes(out)


def decompress_blocks(data: bytes) -> bytes:
    """ClickHouse's compressed blocks (a `decompress=1` request body) as plain bytes; checksums checked."""
    import lz4.block
    from clickhouse_cityhash.cityhash import CityHash128

    out, at = bytearray(), 0
    while at < len(data):
        if len(data) - at < 25:
            raise EncodingError("a compressed block is cut short")
        high, low = struct.unpack_from("<QQ", data, at)
        method, size, plain_size = struct.unpack_from("<BII", data, at + 16)
        block = data[at + 16:at + 16 + size]
        if len(block) != size or size < 9:
            raise EncodingError("a compressed block is cut short")
        if CityHash128(block) != (high << 64) | low:
            raise EncodingError("a compressed block's checksum does not match its data")
        payload = block[9:]
        if method == _LZ4:
            out += lz4.block.decompress(payload, uncompressed_size=plain_size)
        elif method == _NONE:
            out += payload
        elif method == _ZSTD:
            out += _zstd().decompress(payload)
        else:
            raise EncodingError(f"unknown compression method 0x{method:02x} in a compressed block")
        at += 16 + size
    return bytes(out)


def _zstd():
    try:
        from compression import zstd  # type: ignore[import-not-found]  # Python 3.14+
    except ImportError:
        from backports import zstd  # type: ignore[import-not-found,no-redef]  # clickhouse-connect's own
    return zstd


def _lz4_frame() -> Callable[[bytes], bytes]:
    import lz4.frame

    return lz4.frame.compress


# Content-Encoding -> compressor, in the order this server prefers them.
CONTENT_ENCODINGS: dict[str, Callable[[], Callable[[bytes], bytes]]] = {
    "zstd": lambda: _zstd().compress,
    "lz4": _lz4_frame,
    "gzip": lambda: lambda data: gzip.compress(data, compresslevel=3),
    "deflate": lambda: lambda data: zlib.compress(data, 3),
}


def choose_encoding(accept_encoding: str) -> str:
    """The Content-Encoding to answer with for an Accept-Encoding header ("" = none)."""
    offered = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    return next((name for name in CONTENT_ENCODINGS if name in offered), "")


def encode_body(data: bytes, encoding: str) -> bytes:
    return CONTENT_ENCODINGS[encoding]()(data)


def decode_body(data: bytes, encoding: str) -> bytes:
    """A request body sent with Content-Encoding `encoding`."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    try:
        if encoding == "gzip":
            return gzip.decompress(data)
        if encoding == "deflate":
            return zlib.decompress(data)
        if encoding == "zstd":
            return _zstd().decompress(data)
        if encoding == "lz4":
            import lz4.frame

            return lz4.frame.decompress(data)
    except Exception as exc:
        raise EncodingError(f"the request body is not valid {encoding}: {exc}") from exc
    raise EncodingError(f"unsupported Content-Encoding {encoding!r} (gzip, deflate, zstd and lz4 are)")
