#!/usr/bin/env python3
"""Container health checks for the Pulse image: exit 0 when healthy, 1 (and why) when not.

Installed in the image as `pulse-healthcheck`, for docker compose `healthcheck:`:

    pulse-healthcheck grpc 127.0.0.1:50051                    # the ingest: grpc.health.v1 says SERVING
    pulse-healthcheck http http://127.0.0.1:8501/_stcore/health  # the dashboard: HTTP 200
"""

from __future__ import annotations

import argparse
import sys
import urllib.request


def grpc_serving(address: str, service: str, timeout: float) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        raise RuntimeError(f"{address} {service or 'server'}: "
                           f"{health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")


def http_ok(url: str, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as reply:  # raises on 4xx/5xx
        if reply.status != 200:
            raise RuntimeError(f"{url}: HTTP {reply.status}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pulse-healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
    kind = parser.add_subparsers(dest="kind", required=True)
    p = kind.add_parser("grpc", help="a gRPC server's grpc.health.v1 status")
    p.add_argument("address", help="host:port")
    p.add_argument("service", nargs="?", default="", help="the service to ask about (default: the server)")
    p = kind.add_parser("http", help="an HTTP endpoint answering 200")
    p.add_argument("url")
    args = parser.parse_args(argv)
    try:
        if args.kind == "grpc":
            grpc_serving(args.address, args.service, args.timeout)
        else:
            http_ok(args.url, args.timeout)
    except Exception as exc:  # any failure is "unhealthy"; say which
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
