"""Turn one decoded `Batch` into columnar rows, rejecting bad records with a reason.

A bad record never spoils its batch: a bad key drops that key's points, a bad
event drops that event, and the rest is kept. Arrays come straight from the
protobuf packed fields into numpy and Arrow; nothing here loops over points
in Python.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from pulse.limits import MAX_KEY_BYTES, json_size_problem, name_problem, notes_problem, tags_problem
from pulse.media_schema import KINDS, MAX_MEDIA_BYTES, media_problem
from pulse.v1 import telemetry_pb2 as pb

from .blobs import BlobStore

# Names, keys, tags, notes and JSON documents follow pulse/limits.py, the rules the emitter checks at
# the call too; these limits are the server's alone.
MAX_BUCKETS = 10_000
MAX_CAPTION_BYTES = 64 << 10
SHA256 = re.compile(r"[0-9a-f]{64}")
# DateTime64(6) holds 1900..2299; anything outside is a broken clock or garbage.
MIN_TS_US = -2_208_988_800_000_000
MAX_TS_US = 10_413_792_000_000_000
TS = pa.timestamp("us", tz="UTC")
RUN_STATES = {"finished", "failed", "killed"}
CONSOLE_STREAMS = {"stdout", "stderr"}
MAX_CONSOLE_LINE_BYTES = 16 << 10  # the emitter cuts longer lines (emitter/console.py); more is refused
ALERT_LEVELS = {"INFO", "WARN", "ERROR"}


@dataclass
class Decoded:
    """The rows of one batch, per table, plus what was rejected and why."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    events: list[pb.Event] = field(default_factory=list)
    rejected: list[pb.Rejection] = field(default_factory=list)

    def reject(self, what: str, reason: str) -> None:
        self.rejected.append(pb.Rejection(what=what, reason=reason))


class BatchError(ValueError):
    """The batch as a whole is unusable (no run to attach its records to)."""


def check_batch(batch: pb.Batch) -> None:
    for value, what in ((batch.project, "project"), (batch.run_id, "run_id"),
                        (batch.stream_id, "stream_id")):
        problem = name_problem(value, what)
        if problem:
            raise BatchError(problem)
    if batch.seq == 0:
        raise BatchError("seq must start at 1")


def decode(batch: pb.Batch, blobs: BlobStore | None = None) -> Decoded:
    """Validate `batch` (already checked by `check_batch`) and build its rows.

    Media bytes sent inline go to `blobs` here, before their rows are buffered (without a
    blob store, such media are rejected).
    """
    out = Decoded()
    for i, event in enumerate(batch.events):
        problem = event_problem(event)
        if problem:
            out.reject(f"events[{i}].{event.WhichOneof('kind') or 'empty'}", problem)
        else:
            out.events.append(event)
    if batch.HasField("scalars"):
        _add(out, "metrics", _scalars(batch, out))
    if batch.HasField("system"):
        _add(out, "system_metrics", _system(batch, out))
    if batch.histograms:
        _add(out, "histograms", _histograms(batch, out))
    if batch.media:
        _add(out, "media", _media(batch, out, blobs))
    if batch.console:
        _add(out, "logs", _console(batch, out))
    _add(out, "model_graphs", _graphs(batch, out.events))
    _add(out, "alerts", _alerts(batch, out.events))
    return out


def _add(out: Decoded, table: str, data: pa.Table | None) -> None:
    if data is not None and data.num_rows:
        out.tables[table] = data


def event_problem(event: pb.Event) -> str | None:
    kind = event.WhichOneof("kind")
    if kind is None:
        return "event has no kind set"
    if kind == "start":
        for value, what in ((event.start.name, "name"), (event.start.group, "group"),
                            (event.start.job_type, "job_type")):
            if value and (problem := name_problem(value, what)):
                return problem
        if problem := tags_problem(list(event.start.tags)) or notes_problem(event.start.notes):
            return problem
        return (_json_object_problem(event.start.config_json, "config_json")
                or _json_object_problem(event.start.metadata_json, "metadata_json"))
    if kind == "config":
        return _json_object_problem(event.config.config_json, "config_json")
    if kind == "summary":
        return _json_object_problem(event.summary.summary_json, "summary_json")
    if kind == "finish" and event.finish.state not in RUN_STATES:
        return f"finish.state {event.finish.state!r} is not one of {sorted(RUN_STATES)}"
    if kind == "graph":
        return _json_object_problem(event.graph.graph_json, "graph_json")
    if kind == "alert" and event.alert.level not in ALERT_LEVELS:
        return f"alert.level {event.alert.level!r} is not one of {sorted(ALERT_LEVELS)}"
    if kind == "metric":
        return name_problem(event.metric.name, "metric name", MAX_KEY_BYTES)
    if kind == "update":
        update = event.update
        if update.HasField("name") and (problem := name_problem(update.name, "name")):
            return problem
        if update.HasField("notes") and (problem := notes_problem(update.notes)):
            return problem
        return tags_problem(list(update.tags)) if update.set_tags else None
    return None


def _json_object_problem(text: str, what: str) -> str | None:
    if not text:
        return None
    if problem := json_size_problem(text, what):
        return problem
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"{what} is not valid JSON: {exc}"
    return None if isinstance(value, dict) else f"{what} must be a JSON object"


def _columns(block, names: tuple[str, ...], what: str, out: Decoded) -> int | None:
    sizes = {name: len(getattr(block, name)) for name in names}
    if len(set(sizes.values())) > 1:
        out.reject(what, f"columns have different lengths: {sizes}")
        return None
    return next(iter(sizes.values()))


def _key_mask(keys: list[str], index: np.ndarray, what: str, out: Decoded, noun: str) -> np.ndarray:
    """Mask of points whose key is usable; one rejection per bad key."""
    keep = index < len(keys)
    if not keep.all():
        out.reject(f"{what}[{noun}_index]", f"{int((~keep).sum())} points name a {noun} index past "
                   f"the {noun} table ({len(keys)} entries)")
    for i, key in enumerate(keys):
        problem = name_problem(key, noun, MAX_KEY_BYTES)
        if problem:
            hit = index == i
            keep &= ~hit
            out.reject(f"{what}[{noun}={key[:80]!r}]", f"{problem}; dropped {int(hit.sum())} points")
    return keep


def _ts_mask(ts: np.ndarray, what: str, out: Decoded) -> np.ndarray:
    keep = (ts >= MIN_TS_US) & (ts <= MAX_TS_US)
    if not keep.all():
        out.reject(f"{what}[ts_us]", f"{int((~keep).sum())} points have a timestamp outside 1900..2299")
    return keep


def _dictionary(index: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), pa.array(values, pa.string()))


def _owner(batch: pb.Batch, n: int) -> dict[str, pa.Array]:
    return {
        "project": _dictionary(np.zeros(n, np.int32), [batch.project]),
        "run_id": pa.repeat(batch.run_id, n),
    }


def _scalars(batch: pb.Batch, out: Decoded) -> pa.Table | None:
    block = batch.scalars
    if _columns(block, ("key_index", "step", "ts_us", "value"), "scalars", out) is None:
        return None
    keys = list(block.keys)
    index = np.array(block.key_index, dtype=np.uint32)
    step = np.array(block.step, dtype=np.int64)
    ts = np.array(block.ts_us, dtype=np.int64)
    value = np.array(block.value, dtype=np.float64)
    keep = _key_mask(keys, index, "scalars", out, "key") & _ts_mask(ts, "scalars", out)
    negative = step < 0
    if negative.any():
        out.reject("scalars[step]", f"{int(negative.sum())} points have a negative step")
        keep &= ~negative
    if not keep.all():
        index, step, ts, value = index[keep], step[keep], ts[keep], value[keep]
    n = len(index)
    return pa.table({
        **_owner(batch, n),
        "key": _dictionary(index, keys),
        "step": pa.array(step),
        "ts": pa.array(ts, TS),
        "value": pa.array(value),
    })


def _system(batch: pb.Batch, out: Decoded) -> pa.Table | None:
    block = batch.system
    names = ("key_index", "device_index", "ts_us", "value")
    if _columns(block, names, "system", out) is None:
        return None
    if problem := name_problem(block.host, "host"):
        out.reject("system", problem)
        return None
    keys, devices = list(block.keys), list(block.devices) or [""]
    key_index = np.array(block.key_index, dtype=np.uint32)
    device_index = np.array(block.device_index, dtype=np.uint32)
    ts = np.array(block.ts_us, dtype=np.int64)
    value = np.array(block.value, dtype=np.float64)
    keep = _key_mask(keys, key_index, "system", out, "key") & _ts_mask(ts, "system", out)
    keep &= device_index < len(devices)
    n = int(keep.sum())
    return pa.table({
        **_owner(batch, n),
        "host": pa.repeat(block.host, n),
        "device": _dictionary(device_index[keep], devices),
        "key": _dictionary(key_index[keep], keys),
        "ts": pa.array(ts[keep], TS),
        "value": pa.array(value[keep]),
    })


def _histogram_problem(h: pb.Histogram) -> str | None:
    if problem := name_problem(h.key, "key", MAX_KEY_BYTES):
        return problem
    if h.step < 0:
        return "negative step"
    if len(h.bucket_counts) > MAX_BUCKETS:
        return f"{len(h.bucket_counts)} buckets; the limit is {MAX_BUCKETS}"
    if len(h.bucket_edges) != len(h.bucket_counts) + 1:
        return (f"{len(h.bucket_edges)} bucket edges for {len(h.bucket_counts)} buckets "
                "(edges must number buckets + 1)")
    if not all(math.isfinite(edge) for edge in h.bucket_edges):
        return "bucket edges must be finite"
    if not MIN_TS_US <= h.ts_us <= MAX_TS_US:
        return "timestamp outside 1900..2299"
    return None


def _histograms(batch: pb.Batch, out: Decoded) -> pa.Table | None:
    good = []
    for h in batch.histograms:
        if problem := _histogram_problem(h):
            out.reject(f"histograms[key={h.key[:80]!r}, step={h.step}]", problem)
        else:
            good.append(h)
    n = len(good)
    return pa.table({
        **_owner(batch, n),
        "key": pa.array([h.key for h in good], pa.string()),
        "step": pa.array([h.step for h in good], pa.int64()),
        "ts": pa.array([h.ts_us for h in good], TS),
        "count": pa.array([h.count for h in good], pa.uint64()),
        "sum": pa.array([h.sum for h in good], pa.float64()),
        "min": pa.array([h.min for h in good], pa.float64()),
        "max": pa.array([h.max for h in good], pa.float64()),
        "nonfinite": pa.array([h.nonfinite for h in good], pa.uint64()),
        "bucket_edges": pa.array([list(h.bucket_edges) for h in good], pa.list_(pa.float64())),
        "bucket_counts": pa.array([list(h.bucket_counts) for h in good], pa.list_(pa.uint64())),
    })


def _media_problem(m: pb.Media) -> str | None:
    if problem := name_problem(m.key, "key", MAX_KEY_BYTES) or name_problem(m.kind, "kind", 64):
        return problem
    if m.step < 0:
        return "negative step"
    if bool(m.data) == bool(m.uri):
        return "a media record needs either its bytes (data) or a uri, not both"
    if len(m.data) > MAX_MEDIA_BYTES:
        return f"{len(m.data):,} bytes; the limit is {MAX_MEDIA_BYTES:,}"
    if m.sha256 and not SHA256.fullmatch(m.sha256):
        return "sha256 must be 64 lowercase hex digits"
    if m.mime and (problem := name_problem(m.mime, "mime", 128)):
        return problem
    if len(m.caption.encode("utf-8", "surrogatepass")) > MAX_CAPTION_BYTES:
        return f"caption is longer than {MAX_CAPTION_BYTES} bytes"
    # Kinds and mimes from the one list the emitter and the dashboard use; a uri alone may leave the
    # mime unsaid. Tables, plots and point clouds sent inline are parsed and checked: the dashboard reads them.
    if m.data or m.mime:
        return media_problem(m.kind, m.mime, m.data)
    return None if m.kind in KINDS else f"kind {m.kind!r} is not one of {', '.join(KINDS)}"


def _media(batch: pb.Batch, out: Decoded, blobs: BlobStore | None) -> pa.Table:
    rows = []
    for m in batch.media:
        what = f"media[key={m.key[:80]!r}, step={m.step}, index={m.index}]"
        if problem := _media_problem(m):
            out.reject(what, problem)
            continue
        uri, sha = m.uri, m.sha256
        if m.data:
            if blobs is None:
                out.reject(what, "this server has no blob store for media bytes")
                continue
            sha = hashlib.sha256(m.data).hexdigest()
            if m.sha256 and m.sha256 != sha:
                out.reject(what, f"sha256 {m.sha256} does not match the bytes (their sha256 is {sha})")
                continue
            uri = blobs.put(sha, m.data, m.mime)  # an OSError (disk, S3) fails the batch: the client resends it
        rows.append((m, uri, sha))
    n = len(rows)
    return pa.table({
        **_owner(batch, n),
        "key": pa.array([m.key for m, _, _ in rows], pa.string()),
        "step": pa.array([m.step for m, _, _ in rows], pa.int64()),
        "idx": pa.array([m.index for m, _, _ in rows], pa.uint32()),
        "kind": pa.array([m.kind for m, _, _ in rows], pa.string()),
        "uri": pa.array([uri for _, uri, _ in rows], pa.string()),
        "sha256": pa.array([sha for _, _, sha in rows], pa.string()),
        "mime": pa.array([m.mime for m, _, _ in rows], pa.string()),
        "width": pa.array([m.width for m, _, _ in rows], pa.uint32()),
        "height": pa.array([m.height for m, _, _ in rows], pa.uint32()),
        "caption": pa.array([m.caption for m, _, _ in rows], pa.string()),
    })


def _console(batch: pb.Batch, out: Decoded) -> pa.Table:
    """Console lines (`logs`): a line with an unknown stream, no line number, a broken clock or more
    than MAX_CONSOLE_LINE_BYTES is refused on its own."""
    good = []
    for line in batch.console:
        what = f"console[stream={line.stream[:16]!r}, line_no={line.line_no}]"
        if line.stream not in CONSOLE_STREAMS:
            out.reject(what, f"stream must be one of {sorted(CONSOLE_STREAMS)}")
        elif line.line_no == 0:
            out.reject(what, "line_no counts from 1")
        elif not MIN_TS_US <= line.ts_us <= MAX_TS_US:
            out.reject(what, "timestamp outside 1900..2299")
        elif len(line.text) * 4 > MAX_CONSOLE_LINE_BYTES and \
                (size := len(line.text.encode("utf-8", "surrogatepass"))) > MAX_CONSOLE_LINE_BYTES:
            out.reject(what, f"line is {size} bytes long; the limit is {MAX_CONSOLE_LINE_BYTES}")
        else:
            good.append(line)
    return pa.table({
        **_owner(batch, len(good)),
        "ts": pa.array([line.ts_us for line in good], TS),
        "stream": pa.array([line.stream for line in good], pa.string()),
        "line_no": pa.array([line.line_no for line in good], pa.uint64()),
        "text": pa.array([line.text for line in good], pa.string()),
    })


def _of_kind(events: list[pb.Event], kind: str) -> list:
    return [getattr(e, kind) for e in events if e.WhichOneof("kind") == kind]


def _graphs(batch: pb.Batch, events: list[pb.Event]) -> pa.Table:
    graphs = _of_kind(events, "graph")
    n = len(graphs)
    return pa.table({**_owner(batch, n), "ts": pa.array([time.time_ns() // 1000] * n, TS),
                     "graph": pa.array([g.graph_json for g in graphs], pa.string())})


def _alerts(batch: pb.Batch, events: list[pb.Event]) -> pa.Table:
    alerts = _of_kind(events, "alert")
    return pa.table({
        **_owner(batch, len(alerts)),
        "ts": pa.array([a.ts_us for a in alerts], TS),
        "level": pa.array([a.level for a in alerts], pa.string()),
        "title": pa.array([a.title for a in alerts], pa.string()),
        "text": pa.array([a.text for a in alerts], pa.string()),
    })
