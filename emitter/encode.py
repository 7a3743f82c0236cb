"""Records from the queue -> one columnar `Batch`, on the sender thread.

Steps usually log the same keys, so records are grouped by their key tuple
("shape"): the key indices of a shape are computed once per batch and every
column grows by C-level `extend` calls, never a Python loop over values.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from pulse.limits import MAX_JSON_BYTES
from pulse.v1 import telemetry_pb2 as pb

from .checks import Refusals
from .values import PLAIN, to_float

log = logging.getLogger("pulse")

# A queued record is either a scalar row (step, ts_us, values) or an event
# (kind, payload); kinds name the `Event` oneof field they become, except
# ("deferred", item): media, histograms, gradient statistics and system samples,
# whose `item.encode(batch)` writes its own part of the batch (on this thread)
# and may return a scalar row to go with it.
Scalars = tuple[int, int, dict]
EventRecord = tuple[str, Any]
_summary_warned = False  # a summary too large for the server is said once per process


class Encoder:
    def __init__(self, project: str, run_id: str, stream_id: str, on_values=None,
                 refusals: Refusals | None = None) -> None:
        self.project = project
        self.run_id = run_id
        self.stream_id = stream_id
        self.seq = 0
        self.last_points = 0  # metric points in the batch last encoded
        self._on_values = on_values  # summary tracking, called with each record's float values
        self.refusals = refusals or Refusals()

    @property
    def rejected(self) -> dict[str, str]:
        """Keys dropped, with the first reason for each (each warned once)."""
        return self.refusals.keys

    def encode(self, records: list) -> tuple[int, bytes]:
        """Encode records (in queue order) into the next batch; return (seq, bytes)."""
        self.seq += 1
        batch = pb.Batch(project=self.project, run_id=self.run_id, stream_id=self.stream_id,
                         seq=self.seq)
        keys: dict[str, int] = {}
        shapes: dict[tuple, list[int] | None] = {}
        # Plain lists: `+=` copies references in C, and upb's extend reads lists
        # faster than it reads array.array (measured: about twice as fast).
        key_index: list[int] = []
        steps: list[int] = []
        stamps: list[int] = []
        values: list = []
        rows: list[dict] = []
        for record in records:
            if len(record) == 2:
                if record[0] != "deferred":
                    batch.events.append(_event(*record))
                    continue
                record = self._deferred(record[1], batch)
                if record is None:
                    continue
            step, ts, row = record
            shape = tuple(row)
            index = shapes.get(shape, False)
            if index is False:
                index = shapes[shape] = _shape_index(shape, keys)
            if index is None or not PLAIN.issuperset(map(type, row.values())):
                row = self._coerce(row)
                if not row:
                    continue
                index = _shape_index(tuple(row), keys)
            n = len(index)
            key_index += index
            steps += [step] * n
            stamps += [ts] * n
            values += row.values()
            rows.append(row)
        self.last_points = len(values)
        if values:
            block = batch.scalars
            try:
                block.value.extend(values)
            except OverflowError:  # an int past the range of a double: drop those keys, not the batch
                del block.value[:]
                keep = self._refuse_huge_ints(rows, list(keys), key_index, values)
                key_index, steps, stamps, values = ([column[i] for i in keep]
                                                    for column in (key_index, steps, stamps, values))
                self.last_points = len(values)
                block.value.extend(values)
            block.keys.extend(keys)
            block.key_index.extend(key_index)
            block.step.extend(steps)
            block.ts_us.extend(stamps)
        if self._on_values is not None:
            for row in rows:  # after the values proved encodable: the summary sees what is stored
                self._on_values(row)
        return self.seq, batch.SerializeToString()

    def _refuse_huge_ints(self, rows: list[dict], names: list[str], key_index: list[int],
                          values: list) -> list[int]:
        """Refuse the points whose value is an int no double can hold; the positions of the others.

        The rows lose those keys too, so the summary never sees them.
        """
        keep = []
        for i, value in enumerate(values):
            if type(value) is int and not _fits_double(value):
                self.refusals.key("bad value", names[key_index[i]], f"int value of {value.bit_length()} bits "
                                  "is past the range of a double (about 1.8e308)")
            else:
                keep.append(i)
        for row in rows:
            for key in [k for k, v in row.items() if type(v) is int and not _fits_double(v)]:
                del row[key]
        return keep

    def _deferred(self, item: Any, batch: pb.Batch) -> Scalars | None:
        try:
            return item.encode(batch)
        except Exception as exc:  # one bad item (an oversized image, a failed copy) drops only itself
            self.refusals.key("bad value", item.key, f"{type(exc).__name__}: {exc}")
            return None

    def _coerce(self, row: dict) -> dict:
        out = {}
        for key, value in row.items():
            if not isinstance(key, str):
                self.refusals.key("bad key", key, f"key must be a string, not {type(key).__name__}")
                continue
            try:
                out[key] = to_float(value)
            except OverflowError:
                self.refusals.key("bad value", key, f"value of type {type(value).__name__} is past the range "
                                  "of a double (about 1.8e308)")
            except (TypeError, ValueError) as exc:
                self.refusals.key("bad value", key, f"value of type {exc} is not a scalar (number, bool, "
                                  "numpy scalar or 0-dim tensor)")
        return out


def _fits_double(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _shape_index(shape: tuple, keys: dict[str, int]) -> list[int] | None:
    """Key-table indices for a row's keys, or None when a key is not a string."""
    if not all(type(k) is str for k in shape):
        return None
    return [keys.setdefault(k, len(keys)) for k in shape]


def _event(kind: str, payload: Any) -> pb.Event:
    if kind == "start":
        start = dict(payload)
        start["config_json"] = _json(start.pop("config", {}))
        return pb.Event(start=pb.RunStart(**start))
    if kind == "config":
        return pb.Event(config=pb.ConfigUpdate(config_json=_json(payload)))
    if kind == "summary":
        return pb.Event(summary=pb.SummaryUpdate(summary_json=summary_json(payload)))
    if kind == "finish":
        return pb.Event(finish=pb.RunFinish(**payload))
    if kind == "heartbeat":
        return pb.Event(heartbeat=pb.Heartbeat(ts_us=payload))
    if kind == "metric":
        return pb.Event(metric=pb.MetricDefinition(**payload))
    if kind == "graph":
        return pb.Event(graph=pb.ModelGraph(graph_json=_json(payload)))
    if kind == "alert":
        return pb.Event(alert=pb.Alert(**payload))
    if kind == "update":
        tags = payload.get("tags")
        return pb.Event(update=pb.RunUpdate(name=payload.get("name"), notes=payload.get("notes"),
                                            set_tags=tags is not None, tags=tags or []))
    raise ValueError(f"unknown event kind {kind!r}")


def config_json(config: dict) -> str:
    """The config as the run's start (and each config update) carries it."""
    return _json(config)


def summary_json(summary: dict) -> str:
    """The summary as JSON, within the server's limit.

    A run with more keys than fit (hundreds of thousands) keeps those that fit, counted from the
    end (where explicit entries such as `_pulse/dropped_points` are), and says how many it left
    out in `_pulse/summary_truncated`.
    """
    text = _json(summary)
    if len(text) <= MAX_JSON_BYTES:  # ASCII (json.dumps escapes the rest), so characters are bytes
        return text
    fitting, size = [], 64
    for key in reversed(summary):
        size += len(_json({key: summary[key]}))
        if size > MAX_JSON_BYTES:
            break
        fitting.append(key)
    kept = {key: summary[key] for key in reversed(fitting)}
    kept["_pulse/summary_truncated"] = len(summary) - len(kept)
    global _summary_warned
    if not _summary_warned:
        _summary_warned = True
        log.warning("pulse: the run summary has %d keys, past the server's %d bytes of JSON; %d of them are "
                    "left out of it (their points are stored)", len(summary), MAX_JSON_BYTES,
                    len(summary) - len(kept) + 1)
    return _json(kept)


def _json(value: Any) -> str:
    """Strict JSON: NaN and infinities become the strings "NaN", "Infinity", "-Infinity", since
    bare NaN (Python's default) is not JSON and ClickHouse's JSON functions reject the document."""
    try:
        return json.dumps(value, default=_jsonable, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), default=_jsonable, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    jsonable = value if isinstance(value, (str, int, float, type(None))) else _jsonable(value)
    return jsonable if jsonable is value else _finite(jsonable)


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays, tensors, paths: whatever makes sense as JSON."""
    for attr in ("item", "tolist"):
        method = getattr(value, attr, None)
        if callable(method):
            try:
                return method()
            except Exception:  # a multi-element tensor has no item(); tolist() below
                continue
    return str(value)
