"""API keys and TLS, end to end: a real ingest with --auth / --tls-cert, real clients."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid

import grpc
import pytest

import emitter
from conftest import ROOT, Ingest, run_script, wait_for
from pulse.client import QueryClient, QueryError
from pulse.v1 import telemetry_pb2 as pb


def pulse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pulse.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    root = tmp_path_factory.mktemp("auth")
    server = Ingest(root / "data", "--auth").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin_key(secured) -> str:
    return (secured.data_dir / "admin-key").read_text().strip()


def create_key(server: Ingest, admin_key: str, *flags: str) -> str:
    done = pulse("keys", "create", *flags, env={"PULSE_SERVER": server.address, "PULSE_API_KEY": admin_key})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1].split()[-1]


def test_first_start_writes_a_private_admin_key_and_says_where(secured, admin_key):
    path = secured.data_dir / "admin-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin_key.startswith("pk_")
    assert f"wrote the admin API key to {path}" in secured.log_path.read_text()


def test_emitter_without_a_key_fails_at_init_saying_what_to_do(secured, tmp_path, monkeypatch):
    monkeypatch.setenv("PULSE_SERVER", secured.address)
    monkeypatch.setenv("PULSE_DIR", str(tmp_path))
    monkeypatch.delenv("PULSE_API_KEY", raising=False)
    with pytest.raises(emitter.AuthError, match="PULSE_API_KEY") as caught:
        emitter.init(project="secure")
    assert "requires an API key" in str(caught.value)
    monkeypatch.setenv("PULSE_API_KEY", "pk_nothing_real")
    with pytest.raises(emitter.AuthError, match="not valid"):
        emitter.init(project="secure")


def test_project_key_writes_its_project_only_and_read_only_key_cannot_write(secured, admin_key, tmp_path,
                                                                          monkeypatch):
    project = f"sec-{uuid.uuid4().hex[:6]}"
    key = create_key(secured, admin_key, "--project", project)
    reader = create_key(secured, admin_key, "--project", project, "--read-only")
    monkeypatch.setenv("PULSE_SERVER", secured.address)
    monkeypatch.setenv("PULSE_DIR", str(tmp_path))
    monkeypatch.setenv("PULSE_API_KEY", key)
    run = emitter.init(project=project)
    emitter.log({"loss": 0.5})
    emitter.finish()
    with pytest.raises(emitter.AuthError, match="is for project"):
        emitter.init(project="someone-elses")
    monkeypatch.setenv("PULSE_API_KEY", reader)
    with pytest.raises(emitter.AuthError, match="read-only"):
        emitter.init(project=project)

    rows = QueryClient(secured.address, api_key=reader).query(
        "SELECT run_id, state FROM runs FINAL").to_pylist()
    assert rows == [{"run_id": run.id, "state": "finished"}]  # other projects' runs are invisible
    with pytest.raises(QueryError, match="table system.query_log is not readable"):
        QueryClient(secured.address, api_key=reader).query("SELECT * FROM system.query_log")


def test_raw_rpcs_without_a_key_are_unauthenticated_and_with_a_wrong_one_denied(secured, admin_key):
    reader = create_key(secured, admin_key, "--read-only")
    batch = pb.Batch(project="p", run_id="r", stream_id="s", seq=1).SerializeToString()
    with grpc.insecure_channel(secured.address) as channel:
        stream = channel.stream_stream("/pulse.v1.Telemetry/Stream", request_serializer=None,
                                       response_deserializer=pb.Ack.FromString)
        with pytest.raises(grpc.RpcError) as caught:
            list(stream(iter([batch]), timeout=30))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as caught:
            list(stream(iter([batch]), timeout=30, metadata=(("authorization", f"Bearer {reader}"),)))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(QueryError, match="UNAUTHENTICATED"):
        QueryClient(secured.address, api_key="").query("SELECT 1")
    assert QueryClient(secured.address, api_key=reader).query("SELECT 1 AS one").to_pylist() == [{"one": 1}]


def test_keys_are_listed_hashed_and_revocable(secured, admin_key):
    key = create_key(secured, admin_key, "--project", "rev", "--note", "ci")
    key_id = key.split("_")[1]
    env = {"PULSE_SERVER": secured.address, "PULSE_API_KEY": admin_key}
    listing = pulse("keys", "list", env=env)
    assert listing.returncode == 0 and key_id in listing.stdout and "ci" in listing.stdout
    assert key.split("_", 2)[2] not in listing.stdout
    with pytest.raises(QueryError, match="table api_keys is not readable"):  # not even an admin reads hashes
        QueryClient(secured.address, api_key=admin_key).query("SELECT count() AS n FROM api_keys")
    assert pulse("keys", "revoke", key_id, env=env).returncode == 0
    wait_for(lambda: _refused(secured, key), timeout=30, what="the revocation to take effect")
    not_admin = pulse("keys", "list", env={**env, "PULSE_API_KEY": create_key(secured, admin_key)})
    assert not_admin.returncode == 1 and "PERMISSION_DENIED" in not_admin.stderr


def _refused(server: Ingest, key: str) -> bool:
    try:
        QueryClient(server.address, api_key=key).query("SELECT 1")
    except QueryError as exc:
        return "revoked" in str(exc)
    return False


def test_pulse_sql_uses_the_key_from_the_environment(secured, admin_key):
    env = {"PULSE_SERVER": secured.address}
    refused = pulse("sql", "SELECT 1 AS one", env={**env, "PULSE_API_KEY": ""})
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    done = pulse("sql", "SELECT 1 AS one", "--format", "csv", env={**env, "PULSE_API_KEY": admin_key})
    assert done.returncode == 0 and done.stdout.splitlines() == ["one", "1"]


def test_non_loopback_listener_without_auth_refuses_to_start(tmp_path):
    done = pulse("ingest", "--data", str(tmp_path / "d"), "--host", "0.0.0.0", "--port", "0")
    assert done.returncode == 2
    assert "without --auth" in done.stderr and "--insecure" in done.stderr


def make_certificate(directory) -> tuple[str, str]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_with_a_self_signed_certificate(tmp_path):
    cert, key = make_certificate(tmp_path)
    server = Ingest(tmp_path / "data", "--tls-cert", cert, "--tls-key", key).start()
    try:
        env = {"PULSE_SERVER": server.address, "PULSE_TLS_CA": cert, "PULSE_DIR": str(tmp_path / "p")}
        done = run_script("""
            import emitter
            run = emitter.init(project="tls")
            for step in range(100):
                emitter.log({"loss": step})
            emitter.finish()
            print("RUN", run.id)
        """, env)
        assert done.returncode == 0, done.stderr
        run_id = done.stdout.split("RUN ")[1].strip()
        client = QueryClient(server.address, tls_ca=cert, api_key="")
        rows = client.query("SELECT count() AS n FROM metrics FINAL WHERE run_id = {r:String}", {"r": run_id})
        assert rows.to_pylist() == [{"n": 100}]
        with pytest.raises(QueryError, match="UNAVAILABLE"):
            QueryClient(server.address, tls_ca="", api_key="").query("SELECT 1", timeout=3)
    finally:
        server.stop()
