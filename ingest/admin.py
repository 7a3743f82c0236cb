"""The Admin service: create, list and revoke API keys (admin keys only)."""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError

from pulse.v1 import admin_pb2 as pb

from .auth import AuthFailure, KeyStore


class AdminService:
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def handler(self) -> grpc.GenericRpcHandler:
        def method(fn, request_type, reply_type):
            return grpc.unary_unary_rpc_method_handler(
                lambda raw, context: self._admin_only(fn, request_type, raw, context),
                request_deserializer=None, response_serializer=reply_type.SerializeToString)

        return grpc.method_handlers_generic_handler("pulse.v1.Admin", {
            "CreateKey": method(self.create, pb.CreateKeyRequest, pb.CreateKeyReply),
            "ListKeys": method(self.list, pb.ListKeysRequest, pb.ListKeysReply),
            "RevokeKey": method(self.revoke, pb.RevokeKeyRequest, pb.RevokeKeyReply),
        })

    def _admin_only(self, fn, request_type, raw: bytes, context: grpc.ServicerContext):
        request = request_type()
        try:
            request.ParseFromString(raw)  # here, not in grpc, so garbage gets INVALID_ARGUMENT
        except DecodeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {request_type.__name__}: {exc}")
        if not self._keys.enabled:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          "this server runs without --auth, so it has no API keys to manage")
        try:
            principal = self._keys.authenticate(context)
        except AuthFailure as exc:
            context.abort(exc.code, str(exc))
        if not principal.admin:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"key {principal.key_id} is not an admin key")
        return fn(request, context)

    def create(self, request: pb.CreateKeyRequest, context: grpc.ServicerContext) -> pb.CreateKeyReply:
        try:
            key = self._keys.create(request.project, request.read_only, request.admin, request.note)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.CreateKeyReply(key=key)

    def list(self, request: pb.ListKeysRequest, context: grpc.ServicerContext) -> pb.ListKeysReply:
        return pb.ListKeysReply(keys=[pb.KeyInfo(**row) for row in self._keys.list()])

    def revoke(self, request: pb.RevokeKeyRequest, context: grpc.ServicerContext) -> pb.RevokeKeyReply:
        if not self._keys.revoke(request.key_id):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no key {request.key_id!r}")
        return pb.RevokeKeyReply(revoked=True)
