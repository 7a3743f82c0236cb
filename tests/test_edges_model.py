"""A model of what the store holds after any sequence of init/log/finish calls.

Hypothesis generates programs: an `init()` with valid or invalid names and ids, then `log()`
calls with keys (unicode, long, empty, control characters, not strings), values (floats,
NaN, Inf, ints small and past a double, bools, strings, None), steps (none, ints, integral
and other floats, going back, past int64, bools) and widths (up to past one batch), then
`finish()`. The model below applies W&B's rules on its own, without the emitter's code; the
store, run.stats() and the warnings must agree with it: every valid point stored exactly
once, every invalid one refused at the call (warned, counted), nothing else lost.
"""

from __future__ import annotations

import logging
import math
import os
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import emitter
from conftest import Ingest

INT64_MAX = (1 << 63) - 1
WIDE = 25_000  # wider than one batch (20,000 values)


@pytest.fixture(scope="module")
def model_ingest(tmp_path_factory):
    """One ingest for the module; each example writes a project of its own."""
    root = tmp_path_factory.mktemp("model")
    server = Ingest(root / "data", "--heartbeat-timeout", "30").start()
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "PULSE_DIR", "PULSE_MODE", "PULSE_SYSTEM_INTERVAL",
                                             "PULSE_FINISH_TIMEOUT")}
    os.environ.update(PULSE_SERVER=server.address, PULSE_DIR=str(root / "pulse"), PULSE_SYSTEM_INTERVAL="0",
                      PULSE_FINISH_TIMEOUT="60")
    os.environ.pop("PULSE_MODE", None)
    yield server
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


# -- the model: W&B's rules, written out independently of the emitter ---------------------------


def valid_name(value, limit: int) -> bool:
    return (isinstance(value, str) and value != "" and len(value.encode("utf-8", "surrogatepass")) <= limit
            and not any(ord(ch) < 32 or ch == "\x7f" or 0xD800 <= ord(ch) <= 0xDFFF for ch in value))


def valid_run_id(value) -> bool:
    return (value is None or (isinstance(value, str) and 0 < len(value) <= 64
                              and len(value.encode()) <= 128 and not value.startswith(".")
                              and all(ch.isalnum() or ch in "-_." for ch in value)))


def as_step(step):
    """The step the model accepts, or None."""
    if isinstance(step, bool):
        return None
    if isinstance(step, float):
        if not step.is_integer():
            return None
        step = int(step)
    return step if 0 <= step <= INT64_MAX else None


def as_value(value):
    """The double the model stores, or None for a refused value."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            return None
    return value if isinstance(value, float) else None


@dataclass
class Model:
    step: int = 0
    stored: dict = field(default_factory=dict)  # (key, step) -> value, last write wins
    written: int = 0  # valid points sent, with repeats at one (key, step)
    dropped: dict = field(default_factory=dict)  # reason -> points
    refused_keys: set = field(default_factory=set)

    def count(self, reason: str, points: int) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + points

    def log(self, data: dict, step, commit) -> None:
        if step is None:
            at, advance = self.step, commit is not False
        else:
            at = as_step(step)
            if at is None:
                return self.count("bad step", len(data))
            if at < self.step:
                return self.count("earlier step", len(data))
            self.step, advance = at, commit is True
        if at > INT64_MAX:
            return self.count("bad step", len(data))
        for key, value in data.items():
            if not valid_name(key, 512):
                self.count("bad key", 1)
                self.refused_keys.add(key if isinstance(key, str) else repr(key))
            elif isinstance(value, list):
                continue  # W&B makes a histogram of a list of numbers: no metric point
            elif (number := as_value(value)) is None:
                self.count("bad value", 1)
                self.refused_keys.add(key)
            else:
                self.stored[(key, at)] = number
                self.written += 1
        if advance:
            self.step = at + 1


# -- the programs ---------------------------------------------------------------------------------

good_text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=24)
keys = st.one_of(
    good_text, good_text, good_text,
    st.sampled_from(["loss", "val/acc", "损失", "café/ß", "a b", "x" * 512, "é" * 256]),
    st.sampled_from(["", "x" * 513, "é" * 257, "new\nline", "tab\t", "del\x7f", "nul\x00"]),
    st.integers(-5, 5),
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 6, 10 ** 6), st.booleans(),
    st.sampled_from([2 ** 53 + 1, 2 ** 63, -(10 ** 30), 10 ** 400, -(10 ** 309), "text", None, [1.0]]),
)
steps = st.one_of(
    st.none(), st.none(), st.integers(0, 50), st.sampled_from([-1, 2 ** 63, INT64_MAX, True, False]),
    st.integers(0, 50).map(float), st.sampled_from([2.5, -3.0, float("nan"), float("inf"), 1e30]),
)
calls = st.lists(st.tuples(st.dictionaries(keys, values, max_size=6), steps,
                           st.sampled_from([None, None, True, False]), st.sampled_from([0, 0, 0, 0, 0, 0, WIDE])),
                 max_size=12)
names = st.one_of(st.none(), good_text, st.sampled_from(["x" * 257, "two\nlines", "naïve 🚀"]))
run_ids = st.one_of(st.none(), st.sampled_from(["../x", "a/b", ".hidden", "实验-1", "x" * 65, "ok.id_2-3"]))


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def stored(ingest: Ingest, project: str, run_id: str) -> dict:
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE project = {p:String} "
                        "AND run_id = {r:String}", p=project, r=run_id)
    return {(r["key"], r["step"]): r["value"] for r in rows}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(name=names, run_id=run_ids, program=calls)
def test_the_store_matches_the_model_for_any_program_of_init_log_finish(model_ingest, name, run_id, program):
    project = f"model-{uuid.uuid4().hex[:10]}"
    captured = Captured()
    logger = logging.getLogger("pulse")
    logger.addHandler(captured)
    try:
        if not (valid_name(name, 256) if name is not None else True) or not valid_run_id(run_id):
            with pytest.raises(ValueError, match="init\\(\\): (name|run id)"):
                emitter.init(project=project, name=name, id=run_id)
            name, run_id = None, None  # the model: refused at the call, nothing started; start a valid run
        if run_id is not None:
            run_id = f"{run_id}-{uuid.uuid4().hex[:6]}"  # a fresh run per example
        run = emitter.init(project=project, name=name, id=run_id)
        model = Model()
        for data, step, commit, width in program:
            if width:
                data = {**data, **{f"wide/{i}": float(i) for i in range(width)}}
            model.log(data, step, commit)
            emitter.log(data, step=step, commit=commit)
        emitter.finish()
    finally:
        logger.removeHandler(captured)

    assert same(stored(model_ingest, project, run.id), model.stored)  # every valid point, once
    stats = run.stats()
    assert stats["dropped"] == {reason: n for reason, n in model.dropped.items() if n}  # every invalid one
    assert set(stats["rejected_keys"]) == model.refused_keys
    assert stats["points_written"] == model.written and stats["pending_batches"] == 0
    assert stats["refused_batches"] == 0 and stats["sender_errors"] == 0  # nothing else lost
    warned = "\n".join(captured.lines)
    for reason in model.dropped:  # each kind of refusal was said at the call
        assert {"bad step": "dropped this call", "earlier step": "must not go backwards",
                "bad key": "dropped key", "bad value": "dropped key"}[reason] in warned
    closing = [line for line in captured.lines + [""] if f"run {run.id} finished" in line]
    assert not any(model.dropped.values()) or closing, captured.lines  # and finish() says what was dropped
