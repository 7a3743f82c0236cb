"""A client for the ingest's read-only Query RPC (Arrow IPC results).

The dashboard and `pulse sql` use it to read the embedded store, which only
the ingest process may open.
"""

from __future__ import annotations

import json
import os
from typing import Any

import grpc
import pyarrow as pa

from pulse.channel import auth_metadata, open_channel
from pulse.v1 import telemetry_pb2 as pb

QUERY_METHOD = "/pulse.v1.Telemetry/Query"


class QueryError(RuntimeError):
    """The server refused or failed the query; the message is ClickHouse's or the server's."""


class QueryClient:
    def __init__(self, server: str | None = None, api_key: str | None = None, tls_ca: str | None = None) -> None:
        self.server = server or os.environ.get("PULSE_SERVER", "127.0.0.1:50051")
        self._api_key = api_key if api_key is not None else os.environ.get("PULSE_API_KEY", "")
        self._channel = open_channel(self.server, tls_ca)
        self._call = self._channel.unary_unary(QUERY_METHOD, request_serializer=pb.QueryRequest.SerializeToString,
                                               response_deserializer=pb.QueryResponse.FromString)

    def query(self, sql: str, parameters: dict[str, Any] | None = None, max_rows: int = 0,
              timeout: float = 30.0) -> pa.Table:
        request = pb.QueryRequest(sql=sql, max_rows=max_rows, timeout_ms=int(timeout * 1000),
                                  parameters={k: json.dumps(v, default=str) for k, v in (parameters or {}).items()})
        try:
            response = self._call(request, timeout=timeout + 5, metadata=auth_metadata(self._api_key))
        except grpc.RpcError as exc:
            raise QueryError(f"{exc.code().name}: {exc.details()}") from None
        return pa.ipc.open_stream(response.arrow_ipc).read_all()

    def close(self) -> None:
        self._channel.close()

