"""The spool's record format, and a reader that skips damage and finds the next intact record.

A record is

    MAGIC (8 bytes) | seq (u64) | length (u32) | payload crc32 (u32) | header crc32 (u32) | payload

little-endian. The header checksum covers seq, length and the payload
checksum, so a reader trusts a record's length before it reads the payload:
a flipped length byte is caught at once instead of sending the reader off
into the middle of the next record. MAGIC is the resync marker: after a
record that fails its checksum, the reader looks for the next MAGIC whose
header and payload verify, and carries on from there.

zlib's crc32 (not crc32c): it is in the standard library, runs in C at
several GB/s, and catches every burst error up to 32 bits; the records
need error detection, not a defence against forgery.

Segments written before this format (no MAGIC: `seq | length | crc32 of
payload | payload`) are still read, from the start up to the first record
that fails; such a segment has no resync marker, so what follows a bad
record there is reported as damage.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = bytes.fromhex("b73fe25a91c40d6e")  # random; its high bytes are not those of any plausible seq
FIELDS = struct.Struct("<QII")  # seq, length, payload crc32
HEADER_BYTES = len(MAGIC) + FIELDS.size + 4
LEGACY = struct.Struct("<QII")  # the previous format's whole header: seq, length, payload crc32
MAX_RECORD = 1 << 30  # a length above this is damage, not a record


@dataclass(frozen=True)
class Record:
    """An intact record: its seq, and where its payload lies in the file."""
    seq: int
    offset: int  # of the payload
    length: int
    crc: int  # of the payload, checked again whenever it is read back


@dataclass(frozen=True)
class Damage:
    """Bytes of a file that are not an intact record."""
    offset: int
    length: int
    # "corrupt": bytes that fail their checksum, with intact data, or the end of the file, after them;
    # "cut short": a record whose bytes stop at the end of the file (a write cut short by a kill or a
    # full disk): it never reached the disk whole.
    kind: str
    records: int  # how many records the damaged bytes held, as far as their markers tell (at least 1)
    seq_before: int  # seq of the intact record before the damage (0: none)
    seq_after: int  # seq of the intact record after it (0: none)
    seq: int = 0  # the damaged record's own seq, when its header verified

    def describe(self) -> str:
        what = f"{self.length} bytes at offset {self.offset} {self.kind}"
        if self.seq:
            what += f" (record seq {self.seq})"
        else:
            count = self.records if self.kind == "cut short" else f"at least {self.records}"
            what += f" ({count} record{'s' * (self.records != 1)}"
            bounds = [f"after seq {self.seq_before}" if self.seq_before else "",
                      f"before seq {self.seq_after}" if self.seq_after else ""]
            what += (", " + " and ".join(b for b in bounds if b) if any(bounds) else "") + ")"
        return what


def frame(seq: int, payload: bytes) -> bytes:
    """One record's bytes."""
    fields = FIELDS.pack(seq, len(payload), zlib.crc32(payload))
    return MAGIC + fields + struct.pack("<I", zlib.crc32(fields)) + payload


def scan(data: bytes) -> tuple[list[Record], list[Damage]]:
    """Every intact record of a file's bytes, and every stretch of damage between them."""
    view = memoryview(data)
    if not data:
        return [], []
    if data[:len(MAGIC)] != MAGIC and _legacy_record(view, 0) is not None:
        return _scan_legacy(view)
    records: list[Record] = []
    damage: list[Damage] = []
    offset, size = 0, len(data)
    while offset < size:
        record = _record_at(view, offset)
        if record is not None:
            records.append(record)
            offset = record.offset + record.length
            continue
        before = records[-1].seq if records else 0
        header = _header(view, offset)
        if header is None:
            if size - offset < HEADER_BYTES and MAGIC.startswith(data[offset:offset + len(MAGIC)]):
                damage.append(Damage(offset, size - offset, "cut short", 1, before, 0))  # a header cut short
                break
            # The header is damaged, so its length is no guide: on to the next record that verifies.
            seq, end = 0, _next_record(data, view, offset + 1)
        else:
            seq, end = header[0], offset + HEADER_BYTES + header[1]
            if end > size:  # a verified header whose payload runs past the end
                damage.append(Damage(offset, size - offset, "cut short", 1, before, 0, seq))
                break
        after = _record_at(view, end) if end < size else None
        markers = data.count(MAGIC, offset, end)
        damage.append(Damage(offset, end - offset, "corrupt", max(1, markers), before,
                             after.seq if after else 0, seq))
        offset = end
    return records, damage


def _next_record(data: bytes, view: memoryview, offset: int) -> int:
    """Offset of the next MAGIC at or after `offset` that starts an intact record (none: the end)."""
    while True:
        offset = data.find(MAGIC, offset)
        if offset < 0:
            return len(data)
        if _record_at(view, offset) is not None:
            return offset
        offset += 1


def _header(view: memoryview, offset: int) -> tuple[int, int, int] | None:
    """(seq, length, payload crc) of a header at `offset` that verifies, else None."""
    end = offset + HEADER_BYTES
    if end > view.nbytes or view[offset:offset + len(MAGIC)] != MAGIC:
        return None
    fields = view[offset + len(MAGIC):end - 4]
    if zlib.crc32(fields) != struct.unpack_from("<I", view, end - 4)[0]:
        return None
    seq, length, crc = FIELDS.unpack(fields)
    return (seq, length, crc) if length <= MAX_RECORD else None


def _record_at(view: memoryview, offset: int) -> Record | None:
    header = _header(view, offset)
    if header is None:
        return None
    seq, length, crc = header
    start = offset + HEADER_BYTES
    if start + length > view.nbytes or zlib.crc32(view[start:start + length]) != crc:
        return None
    return Record(seq, start, length, crc)


def _legacy_record(view: memoryview, offset: int) -> Record | None:
    if offset + LEGACY.size > view.nbytes:
        return None
    seq, length, crc = LEGACY.unpack_from(view, offset)
    start = offset + LEGACY.size
    if start + length > view.nbytes or zlib.crc32(view[start:start + length]) != crc:
        return None
    return Record(seq, start, length, crc)


def _scan_legacy(view: memoryview) -> tuple[list[Record], list[Damage]]:
    records: list[Record] = []
    offset = 0
    while offset < view.nbytes:
        record = _legacy_record(view, offset)
        if record is None:
            cut = offset + LEGACY.size > view.nbytes or \
                offset + LEGACY.size + LEGACY.unpack_from(view, offset)[1] > view.nbytes
            return records, [Damage(offset, view.nbytes - offset, "cut short" if cut else "corrupt", 1,
                                    records[-1].seq if records else 0, 0)]
        records.append(record)
        offset = record.offset + record.length
    return records, []
