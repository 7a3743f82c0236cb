"""`pulse keys create|list|revoke`: API keys, through the ingest's Admin service."""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from pulse.channel import open_channel
from pulse.v1 import admin_pb2 as pb


def run_keys(args: argparse.Namespace) -> int:
    server = args.server or os.environ.get("PULSE_SERVER", "127.0.0.1:50051")
    api_key = os.environ.get("PULSE_API_KEY", "")
    if not api_key:
        print("pulse keys: set PULSE_API_KEY to an admin key (the server wrote the first one to "
              "<data dir>/admin-key)", file=sys.stderr)
        return 2
    metadata = (("authorization", f"Bearer {api_key}"),)
    with open_channel(server) as channel:
        def call(name, request, reply):
            rpc = channel.unary_unary(f"/pulse.v1.Admin/{name}", request_serializer=type(request).SerializeToString,
                                      response_deserializer=reply.FromString)
            return rpc(request, metadata=metadata, timeout=30)

        try:
            if args.action == "create":
                reply = call("CreateKey", pb.CreateKeyRequest(project=args.project, read_only=args.read_only,
                                                              admin=args.admin, note=args.note), pb.CreateKeyReply)
                scope = f"project {args.project!r}" if args.project else "every project"
                kind = "read-only" if args.read_only else "read-write"
                print(f"pulse keys: created a {kind} key for {scope}; it is shown only once:")
                print(reply.key)
            elif args.action == "list":
                for key in call("ListKeys", pb.ListKeysRequest(), pb.ListKeysReply).keys:
                    flags = [f for f, on in (("read-only", key.read_only), ("admin", key.admin),
                                             ("REVOKED", key.revoked)) if on]
                    print(f"{key.key_id}  {key.project or '*'}  {' '.join(flags) or 'read-write'}  "
                          f"{key.created_at}  {key.note}")
            else:
                if not args.key_id:
                    print("pulse keys revoke: name the key id to revoke", file=sys.stderr)
                    return 2
                call("RevokeKey", pb.RevokeKeyRequest(key_id=args.key_id), pb.RevokeKeyReply)
                print(f"pulse keys: revoked {args.key_id}")
        except grpc.RpcError as exc:
            print(f"pulse keys: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    return 0
