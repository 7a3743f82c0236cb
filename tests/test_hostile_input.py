"""Hostile input: random bytes to every RPC, and valid-but-extreme batches.

Whatever arrives, the server answers with a status that names the problem
(INVALID_ARGUMENT for garbage, never INTERNAL or UNKNOWN), keeps serving, and
stores the good parts of an extreme batch exactly.
"""

from __future__ import annotations

import math
import random
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse.v1 import admin_pb2
from pulse.v1 import telemetry_pb2 as pb

UNARY_METHODS = ["/pulse.v1.Telemetry/Query", "/pulse.v1.Telemetry/CheckAccess", "/pulse.v1.Admin/CreateKey",
                 "/pulse.v1.Admin/ListKeys", "/pulse.v1.Admin/RevokeKey"] + [
    f"/pulse.v1.Sweeps/{name}" for name in ("CreateSweep", "GetSweep", "StopSweep", "CancelSweep", "NextTrial",
                                            "Heartbeat", "ShouldStop", "ReportTrial")]
# Garbage that happens to parse may name a sweep or trial that does not exist: NOT_FOUND says so.
ACCEPTABLE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
              grpc.StatusCode.NOT_FOUND}


def payloads(seed: int, count: int) -> list[bytes]:
    """Random bytes, and truncations and bit flips of valid messages."""
    rng = random.Random(seed)
    valid = pb.Batch(project="p", run_id="r", stream_id="s", seq=1,
                     scalars=pb.ScalarBlock(keys=["a"], key_index=[0], step=[1], ts_us=[1], value=[1.0]))
    valid.events.append(pb.Event(start=pb.RunStart(name="x", config_json="{}")))
    seeds = [valid.SerializeToString(), pb.QueryRequest(sql="SELECT 1").SerializeToString(),
             admin_pb2.CreateKeyRequest(project="p").SerializeToString()]
    out = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            out.append(rng.randbytes(rng.randint(1, 300)))
        elif kind == 1:
            base = rng.choice(seeds)
            out.append(base[:rng.randint(0, len(base) - 1)] + rng.randbytes(rng.randint(0, 3)))
        else:
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            out.append(bytes(data))
    return out


def test_random_and_truncated_bytes_to_every_rpc_get_invalid_argument_never_internal(ingest):
    with grpc.insecure_channel(ingest.address) as channel:
        for method in UNARY_METHODS:
            rpc = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            for payload in payloads(hash(method) % 1000, 150):
                try:
                    rpc(payload, timeout=30)
                except grpc.RpcError as exc:
                    assert exc.code() in ACCEPTABLE, (method, payload, exc.code(), exc.details())
                    assert exc.details(), "the error names the problem"
        stream = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=None,
                                       response_deserializer=pb.Ack.FromString)
        for payload in payloads(7, 150):
            try:
                list(stream(iter([payload]), timeout=30))
            except grpc.RpcError as exc:
                assert exc.code() in ACCEPTABLE, (payload, exc.code(), exc.details())
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def send(address: str, batch: pb.Batch) -> pb.Ack:
    with grpc.insecure_channel(address, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stream = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=None,
                                       response_deserializer=pb.Ack.FromString)
        [ack] = list(stream(iter([batch.SerializeToString()]), timeout=60))
    return ack


names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40) | st.sampled_from(
    ["'; DROP TABLE metrics; --", "\\'", "Robert'); DROP TABLE runs;--", "{p:String}", "名前", "🚀" * 10])
values = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([math.inf, -math.inf, math.nan, 0.0])
steps = st.integers(min_value=0, max_value=2**63 - 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(project=names, run_name=names, points=st.lists(st.tuples(names, steps, values), max_size=50))
def test_extreme_but_valid_batches_are_stored_exactly(ingest, project, run_name, points):
    run_id = uuid.uuid4().hex
    batch = pb.Batch(project=project, run_id=run_id, stream_id=f"{run_id}.s", seq=1)
    batch.events.append(pb.Event(start=pb.RunStart(name=run_name, created_at_us=1_700_000_000_000_000)))
    keys = sorted({key for key, _, _ in points})
    for key, step, value in points:
        batch.scalars.key_index.append(keys.index(key))
        batch.scalars.step.append(step)
        batch.scalars.ts_us.append(1_700_000_000_000_000)
        batch.scalars.value.append(value)
    batch.scalars.keys.extend(keys)
    ack = send(ingest.address, batch)
    assert list(ack.rejected) == []
    expected = {}
    for key, step, value in points:
        expected[(key, step)] = value  # the last write of a (key, step) wins
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE project = {p:String} AND run_id = {r:String}",
                        p=project, r=run_id)
    stored = {(r["key"], r["step"]): r["value"] for r in rows}
    assert stored.keys() == expected.keys()
    for point, value in expected.items():
        assert stored[point] == value or (math.isnan(stored[point]) and math.isnan(value))
    assert ingest.run_row(project, run_id)["name"] == run_name


def test_ten_thousand_keys_one_megabyte_key_and_an_empty_batch(ingest):
    run_id = uuid.uuid4().hex
    batch = pb.Batch(project="extreme", run_id=run_id, stream_id=f"{run_id}.s", seq=1)
    batch.events.append(pb.Event(start=pb.RunStart(name="extreme")))
    keys = [f"layer.{i}/weight/grad_norm" for i in range(10_000)] + ["k" * (1 << 20)]
    batch.scalars.keys.extend(keys)
    batch.scalars.key_index.extend(range(len(keys)))
    batch.scalars.step.extend([2**63 - 1] * len(keys))
    batch.scalars.ts_us.extend([1_700_000_000_000_000] * len(keys))
    batch.scalars.value.extend([float(i) for i in range(len(keys))])
    ack = send(ingest.address, batch)
    [rejection] = ack.rejected
    assert "1048576 bytes long; the limit is 512" in rejection.reason and "dropped 1 points" in rejection.reason
    assert ingest.scalar("SELECT count() FROM metrics FINAL WHERE run_id = {r:String} AND step = 9223372036854775807",
                         r=run_id) == 10_000
    empty = send(ingest.address, pb.Batch(project="extreme", run_id=run_id, stream_id=f"{run_id}.s", seq=2))
    assert empty.seq == 2 and not empty.rejected


@pytest.mark.parametrize("sql", [
    "INSERT INTO runs (project) VALUES ('x')", "ALTER TABLE metrics DELETE WHERE 1", "DROP TABLE runs",
    "SYSTEM SHUTDOWN", "KILL QUERY WHERE 1", "SET readonly = 0", "SELECT 1 SETTINGS readonly = 0",
    "SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')", "SELECT * FROM s3('http://127.0.0.1:9/b/k')",
    "SELECT * FROM file('/etc/passwd')", "SELECT * FROM remote('127.0.0.1:9000', system.one)",
    "SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')", "SELECT 1; DROP TABLE runs",
    "DESCRIBE TABLE file('/etc/passwd')", "OPTIMIZE TABLE metrics FINAL",
    "SELECT * FROM mysql('h', 'd', 't', 'u', 'p')",
])
def test_hostile_sql_is_refused_with_invalid_argument(ingest, sql):
    with grpc.insecure_channel(ingest.address) as channel:
        rpc = channel.unary_unary("/pulse.v1.Telemetry/Query", request_serializer=pb.QueryRequest.SerializeToString,
                                  response_deserializer=pb.QueryResponse.FromString)
        with pytest.raises(grpc.RpcError) as caught:
            rpc(pb.QueryRequest(sql=sql, timeout_ms=5000), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert ingest.scalar("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'runs'") == 1
