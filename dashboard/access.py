"""Who a dashboard session reads as: whether the ingest wants API keys, and what a key may do.

The ingest answers `CheckAccess(project="")` with the key's own scope (its project, read-only,
admin), UNAUTHENTICATED for a missing or wrong key; without a key the call is allowed only when
the ingest runs without auth. A project's key reads that project alone (the Query RPC filters every
table to it), so its project is the one the dashboard offers.

Example:
    if auth_required("127.0.0.1:50051"):
        access = check_key("127.0.0.1:50051", "pk_...")   # LoginError with the reason if refused
        print(access.describe())                          # "key 3f2a… · project 'mnist' · read-only"
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from pulse.channel import auth_metadata, open_channel
from pulse.v1 import telemetry_pb2 as pb

ACCESS_METHOD = "/pulse.v1.Telemetry/CheckAccess"
TIMEOUT_S = 10.0


class LoginError(RuntimeError):
    """The key was refused, or the ingest could not be asked; the message is fit to show."""


@dataclass(frozen=True)
class Access:
    """What the session's key may do, as the ingest says: `project` is "" for a key of every project."""

    key_id: str
    project: str
    read_only: bool
    admin: bool = False

    @property
    def scoped(self) -> bool:
        return bool(self.project)

    @property
    def may_write(self) -> bool:
        return not self.read_only

    def describe(self) -> str:
        scope = f"project {self.project!r}" if self.scoped else "all projects"
        rights = "read-only" if self.read_only else "read-write"
        return f"key {self.key_id} · {scope} · {rights}" + (" · admin" if self.admin else "")


def auth_required(server: str) -> bool:
    """Whether the ingest at `server` wants an API key; LoginError when it cannot be asked."""
    try:
        reply = _check(server, "")
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return True
        raise LoginError(_unreachable(server, exc)) from None
    return reply.auth_required


def check_key(server: str, key: str) -> Access:
    """The scope and rights of `key`; LoginError saying why when the ingest refuses it."""
    key = key.strip()
    if not key:
        raise LoginError("Enter an API key.")
    try:
        reply = _check(server, key)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise LoginError(f"This key was not accepted: {exc.details()}") from None
        raise LoginError(_unreachable(server, exc)) from None
    return Access(key_id=reply.key_id, project=reply.project, read_only=reply.read_only, admin=reply.admin)


def _check(server: str, key: str) -> pb.AccessReply:
    with open_channel(server) as channel:
        rpc = channel.unary_unary(ACCESS_METHOD, request_serializer=pb.AccessRequest.SerializeToString,
                                  response_deserializer=pb.AccessReply.FromString)
        return rpc(pb.AccessRequest(project=""), timeout=TIMEOUT_S, metadata=auth_metadata(key))


def key_id_of(key: str) -> str:
    """The id part of a key, `pk_<id>_<secret>` (what `pulse keys list` and `revoke` name)."""
    return key.removeprefix("pk_").partition("_")[0]


def _unreachable(server: str, exc: grpc.RpcError) -> str:
    return f"The ingest at {server} could not be asked: {exc.code().name}: {exc.details()}"
