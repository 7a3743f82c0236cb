"""CheckAccess(project="") tells any valid key its own scope, and nothing of other projects.

A real `pulse ingest --auth`, keys made with the real `pulse keys create`, a run in another
project written by the real emitter, and the raw CheckAccess RPC as every client sends it.
"""

from __future__ import annotations

import grpc
import pytest
from test_security import create_key

from conftest import Ingest, run_script
from pulse.v1 import telemetry_pb2 as pb

MINE, THEIRS = "scope-mine", "scope-theirs"
THEIR_RUN = "their-run-1"


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    root = tmp_path_factory.mktemp("key-scope")
    server = Ingest(root / "data", "--auth").start()
    server.admin = (server.data_dir / "admin-key").read_text().strip()
    done = run_script(f"""
        import emitter
        with emitter.init(project={THEIRS!r}, id={THEIR_RUN!r}) as run:
            run.log({{"loss": 1.0}}, step=0)
    """, env={"PULSE_SERVER": server.address, "PULSE_API_KEY": server.admin, "PULSE_DIR": str(root / "spool"),
              "PULSE_SYSTEM_INTERVAL": "0"})
    assert done.returncode == 0, done.stderr
    yield server
    server.stop()


def check(server: Ingest, key: str, project: str = "", write: bool = False, run_id: str = "") -> pb.AccessReply:
    with grpc.insecure_channel(server.address) as channel:
        rpc = channel.unary_unary("/pulse.v1.Telemetry/CheckAccess",
                                  request_serializer=pb.AccessRequest.SerializeToString,
                                  response_deserializer=pb.AccessReply.FromString)
        return rpc(pb.AccessRequest(project=project, write=write, run_id=run_id), timeout=30,
                   metadata=(("authorization", f"Bearer {key}"),))


def test_a_scoped_read_only_key_is_told_its_project_and_that_it_only_reads(secured):
    key = create_key(secured, secured.admin, "--project", MINE, "--read-only")
    reply = check(secured, key)
    assert (reply.project, reply.read_only, reply.admin, reply.auth_required) == (MINE, True, False, True)
    assert reply.key_id == key.split("_")[1]
    writer = check(secured, create_key(secured, secured.admin, "--project", MINE))
    assert (writer.project, writer.read_only, writer.admin) == (MINE, False, False)
    admin = check(secured, secured.admin)
    assert (admin.project, admin.read_only, admin.admin) == ("", False, True)


def test_a_scoped_keys_reply_never_reveals_another_project(secured):
    key = create_key(secured, secured.admin, "--project", MINE, "--read-only")
    for request in ({}, {"run_id": THEIR_RUN}):
        reply = check(secured, key, **request)
        assert reply.project == MINE and not reply.run_exists and reply.next_step == 0
        assert not reply.HasField("run_live_owner")
        assert THEIRS.encode() not in reply.SerializeToString()
    assert check(secured, secured.admin, project=THEIRS, run_id=THEIR_RUN).run_exists  # the run is there
    for request in ({"project": THEIRS}, {"project": THEIRS, "run_id": THEIR_RUN},
                    {"project": THEIRS, "write": True}, {"project": MINE, "write": True}):
        with pytest.raises(grpc.RpcError) as refused:
            check(secured, key, **request)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, request


def test_a_wrong_key_is_still_unauthenticated(secured):
    with pytest.raises(grpc.RpcError) as refused:
        check(secured, "pk_000000000000_not-a-real-secret")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
