"""How queued records are cut into batches: at most `max_values` values and about `max_bytes` bytes.

The byte figure is an estimate made from the records before encoding (an over-estimate, never
under), so a batch stays below the budget the server's limit allows (`pulse.limits.batch_budget`).
A record larger alone (one log() of hundreds of thousands of keys) is split by keys into pieces
at the same step and time; storage keeps each (key, step) once, so the pieces make the step whole.
The live sender (batcher.py) and the overflow file (overflow.py) cut their batches here, so a
record spilled past the queue bound is uploaded by `pulse sync` in batches the server takes.

Example:
    for batch in sized_batches(records, 20_000, 4 << 20):
        encoder.encode(batch)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .media import BYTES_PER_VALUE

MAX_BATCH_VALUES = 20_000  # values per batch, well under the ingest's batch limit
# A scalar point's bytes in a batch at most, besides its key: key index, step and timestamp
# varints, the double, and the key table entry's framing.
POINT_BYTES = 40


def sized_batches(records: Iterable[tuple], max_values: int, max_bytes: int) -> Iterator[list]:
    """The records, in order, as non-empty lists within `max_values` and `max_bytes`, splitting a
    scalar row that is larger alone by keys."""
    batch: list = []
    n = size = 0
    for record in records:
        for piece, values, nbytes in pieces(record, max_values, max_bytes):
            if batch and (n + values > max_values or size + nbytes > max_bytes):
                yield batch
                batch, n, size = [], 0, 0
            batch.append(piece)
            n += values
            size += nbytes
    if batch:
        yield batch


def pieces(record: tuple, max_values: int, max_bytes: int) -> Iterator[tuple[tuple, int, int]]:
    """(piece, values, estimated bytes) of a record: itself, or its keys in slices that fit a batch."""
    values, nbytes = weight(record)
    if len(record) != 3 or (values <= max_values and nbytes <= max_bytes):
        yield record, values, nbytes
        return
    step, ts, row = record
    piece: dict = {}
    size = 0
    for key, value in row.items():
        cost = point_bytes(key)
        if piece and (len(piece) >= max_values or size + cost > max_bytes):
            yield (step, ts, piece), len(piece), size
            piece, size = {}, 0
        piece[key] = value
        size += cost
    if piece:
        yield (step, ts, piece), len(piece), size


def weight(record: tuple) -> tuple[int, int]:
    """(values, estimated bytes) of a queued record in a batch; an over-estimate, never under."""
    if len(record) == 3:
        row = record[2]
        try:  # UTF-8 takes at most 4 bytes per character
            return len(row), len(row) * POINT_BYTES + 4 * sum(map(len, row))
        except TypeError:  # a key that is not a string: the encoder refuses it
            return len(row), sum(map(point_bytes, row))
    if record[0] == "deferred":
        weight = record[1].weight  # media count by size, so a batch stays under the ingest's limit
        return weight, weight * BYTES_PER_VALUE
    return 0, 0  # events: a config or summary is bounded by the server's JSON limit on its own


def point_bytes(key: object) -> int:
    """A scalar point's estimated bytes in a batch, its key included."""
    return POINT_BYTES + 4 * (len(key) if isinstance(key, str) else 64)
