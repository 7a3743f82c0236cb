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

from pulse.v1 import telemetry_pb2 as pb

from .values import PLAIN, to_float

log = logging.getLogger("pulse")

# A queued record is either a scalar row (step, ts_us, values) or an event
# (kind, payload); kinds name the `Event` oneof field they become, except
# ("deferred", item): media, histograms, gradient statistics and system samples,
# whose `item.encode(batch)` writes its own part of the batch (on this thread)
# and may return a scalar row to go with it.
Scalars = tuple[int, int, dict]
EventRecord = tuple[str, Any]


class Encoder:
    def __init__(self, project: str, run_id: str, stream_id: str, on_values=None) -> None:
        self.project = project
        self.run_id = run_id
        self.stream_id = stream_id
        self.seq = 0
        self._on_values = on_values  # summary tracking, called with each record's float values
        self.rejected: dict[str, str] = {}  # key -> reason, warned once each

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
        on_values = self._on_values
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
            if on_values is not None:
                on_values(row)
        if values:
            block = batch.scalars
            block.keys.extend(keys)
            block.key_index.extend(key_index)
            block.step.extend(steps)
            block.ts_us.extend(stamps)
            block.value.extend(values)
        return self.seq, batch.SerializeToString()

    def _deferred(self, item: Any, batch: pb.Batch) -> Scalars | None:
        try:
            return item.encode(batch)
        except Exception as exc:  # one bad item (an oversized image, a failed copy) drops only itself
            self._reject(item.key, f"{type(exc).__name__}: {exc}")
            return None

    def _coerce(self, row: dict) -> dict:
        out = {}
        for key, value in row.items():
            if not isinstance(key, str):
                self._reject(repr(key), f"key must be a string, not {type(key).__name__}")
                continue
            try:
                out[key] = to_float(value)
            except (TypeError, ValueError, OverflowError) as exc:
                self._reject(key, f"value of type {exc} is not a scalar (number, bool, numpy "
                             "scalar or 0-dim tensor)")
        return out

    def _reject(self, key: str, reason: str) -> None:
        if key not in self.rejected:
            self.rejected[key] = reason
            log.warning("pulse: log() dropped key %s: %s", key if len(key) < 200 else key[:200] + "...",
                        reason)


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
        return pb.Event(summary=pb.SummaryUpdate(summary_json=_json(payload)))
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
    raise ValueError(f"unknown event kind {kind!r}")


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
