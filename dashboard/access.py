"""Who a dashboard session reads as: whether the ingest wants API keys, and what a key may do.

The ingest answers `CheckAccess` with UNAUTHENTICATED for a missing or wrong key and
PERMISSION_DENIED for a key that may not do the thing asked, so a key's scope is learnt by asking:

- `CheckAccess(project="")` without a key: allowed only when the ingest runs without auth;
- with the key: allowed for an all-projects key, PERMISSION_DENIED for a project-scoped one, whose
  project is then the one project its reads see (the Query RPC filters every table to it);
- `CheckAccess(project, write=True)`: whether the key may write that project.

Example:
    if auth_required("127.0.0.1:50051"):
        access = check_key("127.0.0.1:50051", "pk_...")   # LoginError with the reason if refused
        print(access.describe())                          # "key 3f2a… · project 'mnist' · read-only"
"""

from __future__ import annotations

from collections.abc import Callable
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
    """What the session's key may do. `project` is "" for a key of every project; for a scoped key it
    is its project, or None while that project has no runs to tell it by (and then `read_only` is
    None too: unknown, so nothing may be edited)."""

    key_id: str
    scoped: bool
    project: str | None
    read_only: bool | None

    @property
    def may_write(self) -> bool:
        return self.read_only is False

    def describe(self) -> str:
        scope = ("all projects" if not self.scoped else
                 f"project {self.project!r}" if self.project else "one project (no runs yet)")
        rights = {True: "read-only", False: "read-write", None: "rights unknown"}[self.read_only]
        return f"key {self.key_id} · {scope} · {rights}"


def auth_required(server: str) -> bool:
    """Whether the ingest at `server` wants an API key; LoginError when it cannot be asked."""
    try:
        reply = _check(server, "", project="")
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return True
        raise LoginError(_unreachable(server, exc)) from None
    return reply.auth_required


def check_key(server: str, key: str, projects: Callable[[], list[str]] | None = None) -> Access:
    """The scope and rights of `key`; LoginError saying why when the ingest refuses it.

    `projects` lists the projects the key reads (the dashboard's `Source.projects` with that key);
    it names a scoped key's project.
    """
    key = key.strip()
    if not key:
        raise LoginError("Enter an API key.")
    try:
        reply = _check(server, key, project="")
        scoped, key_id = False, reply.key_id
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise LoginError(f"This key was not accepted: {exc.details()}") from None
        if exc.code() != grpc.StatusCode.PERMISSION_DENIED:
            raise LoginError(_unreachable(server, exc)) from None
        scoped, key_id = True, key_id_of(key)
    project: str | None = ""
    if scoped:
        seen = projects() if projects is not None else []
        project = seen[0] if len(seen) == 1 else None
    read_only = None if project is None else not _may_write(server, key, project)
    return Access(key_id=key_id, scoped=scoped, project=project, read_only=read_only)


def _may_write(server: str, key: str, project: str) -> bool:
    try:
        _check(server, key, project=project, write=True)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED:
            return False
        raise LoginError(_unreachable(server, exc)) from None
    return True


def _check(server: str, key: str, project: str, write: bool = False) -> pb.AccessReply:
    with open_channel(server) as channel:
        rpc = channel.unary_unary(ACCESS_METHOD, request_serializer=pb.AccessRequest.SerializeToString,
                                  response_deserializer=pb.AccessReply.FromString)
        return rpc(pb.AccessRequest(project=project, write=write), timeout=TIMEOUT_S,
                   metadata=auth_metadata(key))


def key_id_of(key: str) -> str:
    """The id part of a key, `pk_<id>_<secret>` (what `pulse keys list` and `revoke` name)."""
    return key.removeprefix("pk_").partition("_")[0]


def _unreachable(server: str, exc: grpc.RpcError) -> str:
    return f"The ingest at {server} could not be asked: {exc.code().name}: {exc.details()}"
