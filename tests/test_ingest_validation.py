"""Bad input gets a clear reason; the rest of the batch, and the server, carry on."""

from __future__ import annotations

import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pulse.client import QueryClient, QueryError
from pulse.v1 import telemetry_pb2 as pb


def stream(address: str, messages: list[bytes]) -> list[pb.Ack]:
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=None,
                                     response_deserializer=pb.Ack.FromString)
        return list(call(iter(messages), timeout=60))


def batch(project: str, run_id: str, seq: int = 1, start: bool = True, **fields) -> pb.Batch:
    b = pb.Batch(project=project, run_id=run_id, stream_id=f"{run_id}.s", seq=seq, **fields)
    if start:
        b.events.append(pb.Event(start=pb.RunStart(name=run_id, created_at_us=1_700_000_000_000_000)))
    return b


def assert_serving(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="pulse.v1.Telemetry"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("payload, reason", [
    (b"\xff\xff\xff\xff\x0f garbage", "malformed Batch"),
    (pb.Batch(project="p", run_id="r", stream_id="s", seq=1).SerializeToString()[:-1] + b"\x80", "malformed Batch"),
    (pb.Batch(project="", run_id="r", stream_id="s", seq=1).SerializeToString(), "project is empty"),
    (pb.Batch(project="p", run_id="r\x00", stream_id="s", seq=1).SerializeToString(), "control characters"),
    (pb.Batch(project="p", run_id="r", stream_id="s", seq=0).SerializeToString(), "seq must start at 1"),
    (b"x" * (33 << 20), "exceeds the limit"),
])
def test_malformed_or_oversized_batch_gets_invalid_argument_and_server_keeps_serving(ingest, payload, reason):
    with pytest.raises(grpc.RpcError) as caught:
        stream(ingest.address, [payload])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in caught.value.details()
    assert_serving(ingest.address)


def test_bad_records_are_rejected_with_reasons_and_the_rest_is_kept(ingest):
    project, run_id = f"val-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    b = batch(project, run_id)
    s = b.scalars
    s.keys.extend(["good", "bad\nkey", "x" * 600, "neg"])
    s.key_index.extend([0, 0, 1, 2, 3, 9])
    s.step.extend([0, 1, 0, 0, -5, 0])
    s.ts_us.extend([1_700_000_000_000_000] * 6)
    s.value.extend([1.0, float("nan"), 2.0, 3.0, 4.0, 5.0])
    b.events.append(pb.Event(config=pb.ConfigUpdate(config_json="{not json")))
    b.events.append(pb.Event(finish=pb.RunFinish(state="exploded")))
    b.histograms.append(pb.Histogram(key="h", step=0, ts_us=1_700_000_000_000_000, bucket_edges=[0, 1],
                                     bucket_counts=[1, 2]))
    [ack] = stream(ingest.address, [b.SerializeToString()])
    reasons = {r.what: r.reason for r in ack.rejected}
    assert "contains control characters" in reasons["scalars[key='bad\\nkey']"]
    assert "600 bytes long; the limit is 512" in reasons[f"scalars[key={'x' * 80!r}]"]
    assert "negative step" in reasons["scalars[step]"]
    assert "past the key table" in reasons["scalars[key_index]"]
    assert "not valid JSON" in reasons["events[1].config"]
    assert "not one of" in reasons["events[2].finish"]
    assert "2 bucket edges for 2 buckets" in reasons["histograms[key='h', step=0]"]
    rows = ingest.query("SELECT key, step, value FROM metrics FINAL WHERE run_id = {r:String} ORDER BY step",
                        r=run_id)
    assert [(r["key"], r["step"]) for r in rows] == [("good", 0), ("good", 1)]
    assert ingest.run_row(project, run_id)["state"] == "running"  # the bad finish was not applied


def test_unknown_run_is_rejected_with_a_reason(ingest):
    b = batch("val-unknown", "never-started", start=False)
    b.scalars.keys.append("x")
    b.scalars.key_index.append(0)
    b.scalars.step.append(0)
    b.scalars.ts_us.append(1_700_000_000_000_000)
    b.scalars.value.append(1.0)
    [ack] = stream(ingest.address, [b.SerializeToString()])
    assert ack.rejected[0].what == "batch"
    assert "unknown run 'never-started'" in ack.rejected[0].reason
    assert ingest.query("SELECT count() AS n FROM metrics WHERE run_id = 'never-started'") == [{"n": 0}]


def test_resent_batches_are_acked_once_committed_and_stored_once(ingest):
    project, run_id = "val-resend", uuid.uuid4().hex[:8]
    first = batch(project, run_id, seq=1)
    second = batch(project, run_id, seq=2, start=False)
    for b, step in ((first, 0), (second, 1)):
        b.scalars.keys.append("k")
        b.scalars.key_index.append(0)
        b.scalars.step.append(step)
        b.scalars.ts_us.append(1_700_000_000_000_000)
        b.scalars.value.append(float(step))
    acks = stream(ingest.address, [first.SerializeToString(), second.SerializeToString()])
    assert [a.seq for a in acks] == [1, 2]
    again = stream(ingest.address, [first.SerializeToString(), second.SerializeToString()])
    assert [a.seq for a in again] == [1, 2]
    assert ingest.scalar("SELECT count() FROM metrics WHERE run_id = {r:String}", r=run_id) == 2


@pytest.mark.parametrize("sql, reason", [
    ("INSERT INTO metrics (key) VALUES ('x')", "only read-only queries"),
    ("DROP TABLE metrics", "only read-only queries"),
    ("CREATE TABLE x (a Int8) ENGINE = Memory", "only read-only queries"),
    ("SELECT 1; SELECT 2", "Multi-statements are not allowed"),
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS readonly is not allowed"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file()"),
    ("SELECT * FROM numbers(2) AS n, (SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String'))",
     "table function url()"),
    ("SELECT count() FROM numbers(1000000000) WHERE sipHash64(number) = 0", "TIMEOUT_EXCEEDED"),
    ("SELECT count() FROM numbers(100000000000)", "max_rows_to_read"),
    ("SELEC 1", "Syntax error"),
    ("", "empty query"),
])
def test_query_rpc_is_read_only_and_says_why_it_refuses(ingest, sql, reason):
    client = QueryClient(ingest.address, api_key="")
    with pytest.raises(QueryError) as caught:
        client.query(sql, timeout=1)
    assert caught.value.args[0].startswith("INVALID_ARGUMENT")
    assert reason in str(caught.value)


def test_query_rpc_binds_hostile_parameters_and_limits_rows(ingest):
    client = QueryClient(ingest.address, api_key="")
    hostile = "it's a \\ 'test'; DROP TABLE runs; --"
    assert client.query("SELECT {s:String} AS s", {"s": hostile}).to_pylist() == [{"s": hostile}]
    assert client.query("SELECT number FROM numbers(5)", max_rows=5).num_rows == 5
    with pytest.raises(QueryError, match="TOO_MANY_ROWS"):
        client.query("SELECT number FROM numbers(10)", max_rows=5)
    assert client.query("SELECT count() AS n FROM system.tables WHERE name = 'runs'").to_pylist() == [{"n": 1}]
    with pytest.raises(QueryError, match="table api_keys is not readable"):  # hashes stay hidden
        client.query("SELECT count() AS n FROM api_keys")


def test_a_replayed_start_does_not_revive_a_run_that_ended(ingest):
    """pulse sync may replay a run's first batch long after the run ended and left the ingest's cache."""
    project, run_id = "val-replay", uuid.uuid4().hex[:8]
    finish = batch(project, run_id, seq=2, start=False)
    finish.events.append(pb.Event(finish=pb.RunFinish(state="finished")))
    stream(ingest.address, [batch(project, run_id, seq=1).SerializeToString(), finish.SerializeToString()])
    assert ingest.run_row(project, run_id)["state"] == "finished"
    replayed = batch(project, run_id, seq=1, replay=True)
    replayed.stream_id = f"{run_id}.sync"  # a new stream, so the ingest's memory of seqs does not help
    [ack] = stream(ingest.address, [replayed.SerializeToString()])
    assert not ack.rejected
    assert ingest.run_row(project, run_id)["state"] == "finished"
