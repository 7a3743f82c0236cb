"""ClickHouse's HTTP interface on the ingest, read-only: Grafana, DBeaver, clickhouse-connect reach Pulse.

In the embedded default one process owns the data directory, so a BI tool cannot open it; this
server speaks the part of ClickHouse's HTTP protocol those clients use, on the ingest's own store
(`pulse up --sql-port 8123`, 0 turns it off). Every statement takes the users' path of the Query RPC
(ingest/query.py: the allowlist guard, the limits, the key's project scope) and runs with the FORMAT
the client asks for, so the bytes that come back are the engine's own, never re-encoded here.

Served: `/ping` and `/` (GET or POST; the SQL in the `query` parameter and/or the body, or in
multipart form fields), `param_<name>` values for `{name:Type}`, `default_format` or a trailing
FORMAT clause, `database` (the store's only), `query_id`, output-format settings as URL parameters,
`max_result_rows`/`max_execution_time` (lowered to the server's limits, never raised),
`compress=1` (ClickHouse's compressed blocks, the JDBC drivers' default), `decompress=1`,
`enable_http_compression=1` with Accept-Encoding, and gzip/deflate/zstd/lz4 request bodies.
Keys: a Pulse API key as the ClickHouse password (any user name) or user, `X-ClickHouse-Key`, or
`Authorization: Bearer`. Errors come back as ClickHouse's: an HTTP status, `Code: N.
DB::Exception: ...` and `X-ClickHouse-Exception-Code`, so each client shows the reason.
Not served: writes, sessions (`session_id` is accepted and ignored), external data, progress headers.

The HTTP server is the standard library's threading one: the protocol is plain request/response
HTTP/1.1 with keep-alive, which it does well, and the ingest gains no dependency for it. Statements
run on a few worker threads (the store keeps one client per thread, so the engine sees a bounded
number of readers however many connections BI tools open).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import threading
import uuid
from concurrent import futures
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import http_encoding
from .auth import AuthFailure, KeyStore
from .query import QueryRejected, project_filters, run_query_raw
from .storage import Store

log = logging.getLogger(__name__)
DEFAULT_PORT = 8123
WORKERS = 4
MAX_BODY_BYTES = 1 << 20  # a query, not data: this interface takes no inserts
IDLE_TIMEOUT_S = 60.0  # a keep-alive connection idle this long is closed
# URL parameters that steer the interface, not the query; accepted, and ignored where noted.
TRANSPORT = frozenset({
    "query", "database", "default_format", "user", "password", "quota_key", "query_id", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "buffer_size", "wait_end_of_query",
    "client_protocol_version", "role", "stacktrace", "enable_http_compression", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close", "http_wait_end_of_query",
    "http_response_buffer_size", "add_http_cors_header", "readonly", "result_overflow_mode",
    "http_native_compression_disable_checksumming_on_decompress", "date_time_input_format",
    "cast_string_to_dynamic_use_inference", "use_client_time_zone",
})
# Settings a client may set for its query: how results are written, never what may be read.
OUTPUT_SETTINGS = frozenset({"extremes", "max_block_size", "session_timezone", "join_use_nulls",
                             "date_time_output_format", "interval_output_format", "limit", "offset"})
OUTPUT_PREFIXES = ("output_format_", "format_")
# The output formats the interface answers in, by their lowercased name (ClickHouse's own spelling).
FORMATS = {name.lower(): name for name in (
    "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "TabSeparatedWithNames", "TSVWithNames",
    "TabSeparatedWithNamesAndTypes", "TSVWithNamesAndTypes", "TabSeparatedRawWithNames",
    "TabSeparatedRawWithNamesAndTypes", "CSV", "CSVWithNames", "CSVWithNamesAndTypes", "JSON", "JSONStrings",
    "JSONCompact", "JSONCompactStrings", "JSONColumns", "JSONCompactColumns", "JSONEachRow", "JSONLines",
    "NDJSON", "JSONStringsEachRow", "JSONCompactEachRow", "JSONCompactEachRowWithNames",
    "JSONCompactEachRowWithNamesAndTypes", "JSONCompactStringsEachRow", "JSONObjectEachRow", "JSONColumnsWithMetadata",
    "Native", "Arrow", "ArrowStream", "Parquet", "ORC", "RowBinary", "RowBinaryWithNames",
    "RowBinaryWithNamesAndTypes", "Values", "Vertical", "Pretty", "PrettyCompact", "PrettyCompactMonoBlock",
    "PrettyNoEscapes", "PrettySpace", "Markdown", "XML", "TSKV", "Null")}
_TSV = "text/tab-separated-values; charset=UTF-8"
_CONTENT_TYPES = (("tab", _TSV), ("tsv", _TSV), ("csv", "text/csv; charset=UTF-8"),
                  ("json", "application/json; charset=UTF-8"),
                  ("ndjson", "application/json; charset=UTF-8"), ("pretty", "text/plain; charset=UTF-8"),
                  ("markdown", "text/markdown; charset=UTF-8"), ("xml", "application/xml; charset=UTF-8"),
                  ("vertical", "text/plain; charset=UTF-8"), ("values", "text/plain; charset=UTF-8"))
_TRAILING_FORMAT = re.compile(r"\s+FORMAT\s+(\w+)\s*;?\s*\Z", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)\.")
# ClickHouse's error names and HTTP statuses for the codes this interface answers with.
NAMES = {36: "BAD_ARGUMENTS", 62: "SYNTAX_ERROR", 73: "UNKNOWN_FORMAT", 81: "UNKNOWN_DATABASE",
         115: "UNKNOWN_SETTING", 164: "READONLY", 210: "NETWORK_ERROR", 497: "ACCESS_DENIED",
         516: "AUTHENTICATION_FAILED", 1001: "STD_EXCEPTION", 1002: "UNKNOWN_EXCEPTION"}
_STATUS = {516: 401, 192: 401, 193: 401, 194: 401, 164: 403, 497: 403, 60: 404, 81: 404, 1002: 404,
           36: 400, 62: 400, 73: 400, 115: 400, 47: 400, 46: 400, 43: 400, 53: 400, 42: 400, 456: 400, 457: 400}


class ClickHouseError(Exception):
    """An answer as a ClickHouse exception: `Code: N. DB::Exception: message. (NAME)`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code

    @classmethod
    def from_rejection(cls, exc: Exception) -> ClickHouseError:
        """The engine's code where its message has one, else READONLY: a refusal of users' checks."""
        text = str(exc)
        found = _CODE.search(text)
        if found:
            return cls(int(found.group(1)), text[found.start():])
        return cls(164, text)

    @property
    def status(self) -> int:
        return _STATUS.get(self.code, 500)

    def text(self, version: str) -> str:
        message = str(self)
        if not message.startswith("Code: "):
            message = f"Code: {self.code}. DB::Exception: {message.rstrip('.')}. ({NAMES.get(self.code, 'UNKNOWN')})"
        return f"{message} (version {version})\n"


class Reply:
    """What goes back: status, headers, body."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, dict(headers or {})


class SqlEndpoint:
    """The protocol on the store: one request in, one `Reply` out (no sockets here)."""

    def __init__(self, store: Store, keys: KeyStore) -> None:
        self.store = store
        self.keys = keys
        self._pool = futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="pulse-sql")
        database, timezone, version = store.query_rows("SELECT currentDatabase(), timezone(), version()")[0]
        self.database, self.timezone, self.version = database, timezone, version

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def handle(self, method: str, target: str, headers: Any, body: bytes) -> Reply:
        url = urlsplit(target)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            reply = self._route(method, url.path, params, headers, body)
        except ClickHouseError as exc:
            reply = Reply(exc.status, exc.text(self.version).encode(),
                          {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": str(exc.code)})
        reply.headers.update({"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": self.timezone,
                              "X-ClickHouse-Server-Display-Name": "pulse"})
        return reply

    def _route(self, method: str, path: str, params: dict[str, str], headers: Any, body: bytes) -> Reply:
        if path in ("/ping", "/replicas_status") or (path == "/" and method != "POST" and "query" not in params):
            return Reply(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
        if path != "/":
            raise ClickHouseError(1002, f"There is no handle {path}: use / for queries and /ping for health checks")
        body = self._body(params, headers, body)
        content_type = headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            params.update(_form_fields(content_type, body))
            body = b""
        principal = self._principal(params, headers)
        sql = "\n".join(part for part in (params.get("query", ""), body.decode("utf-8", "replace")) if part.strip())
        fmt, sql = _split_format(sql, params.get("default_format") or "TabSeparated")
        database = params.get("database", "")
        if database and database != self.database:
            raise ClickHouseError(81, f"Database {database} does not exist: this server has one, {self.database}")
        parameters = {name[6:]: RawValue(value) for name, value in params.items() if name.startswith("param_")}
        settings, max_rows, timeout_s = _settings(params)
        job = self._pool.submit(self._run, sql, fmt, parameters, principal.project, settings, max_rows, timeout_s)
        payload = job.result()
        return self._answer(payload, fmt, params, headers)

    def _run(self, sql: str, fmt: str, parameters: dict[str, Any], project: str, settings: dict[str, Any],
             max_rows: int, timeout_s: float) -> bytes:
        try:  # every statement, the clients' questions on connecting too, takes the users' checks
            return run_query_raw(self.store, sql, fmt, parameters or None, max_rows=max_rows, timeout_s=timeout_s,
                                 filters=project_filters(self.store, project), settings=settings)
        except QueryRejected as exc:
            raise ClickHouseError.from_rejection(exc) from exc
        except Exception as exc:  # the engine's own errors carry their code
            raise ClickHouseError.from_rejection(exc) from exc

    def _body(self, params: dict[str, str], headers: Any, body: bytes) -> bytes:
        try:
            body = http_encoding.decode_body(body, headers.get("Content-Encoding", ""))
            if params.get("decompress") == "1" and body:
                body = http_encoding.decompress_blocks(body)
        except http_encoding.EncodingError as exc:
            raise ClickHouseError(36, str(exc)) from exc
        if len(body) > MAX_BODY_BYTES:
            raise ClickHouseError(36, f"the request body is {len(body)} bytes; this server takes queries of up to "
                                      f"{MAX_BODY_BYTES}")
        return body

    def _principal(self, params: dict[str, str], headers: Any):
        """The key's principal; the key is the ClickHouse password (or user), X-ClickHouse-Key, or a Bearer token."""
        user, password = params.get("user", ""), params.get("password", "")
        authorization = headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ClickHouseError(516, "the Authorization header is not valid Basic credentials") from None
        elif authorization.startswith("Bearer "):
            password = authorization[7:].strip()
        user = headers.get("X-ClickHouse-User", user)
        password = headers.get("X-ClickHouse-Key", password)
        key = password or (user if user.startswith("pk_") else "")
        try:
            return self.keys.authenticate(_KeyContext(key))
        except AuthFailure as exc:
            raise ClickHouseError(516, f"{user or 'default'}: {exc}. Use a Pulse API key as the password "
                                       "(`pulse keys create --project P --read-only`)") from None

    def _answer(self, payload: bytes, fmt: str, params: dict[str, str], headers: Any) -> Reply:
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": "0", "written_bytes": "0",
                   "total_rows_to_read": "0", "result_bytes": str(len(payload))}
        out = {"X-ClickHouse-Format": fmt, "Content-Type": content_type(fmt),
               "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":"))}
        if params.get("compress") == "1":
            return Reply(200, http_encoding.compress_blocks(payload), out)
        if params.get("enable_http_compression") == "1" and payload:
            encoding = http_encoding.choose_encoding(headers.get("Accept-Encoding", ""))
            if encoding:
                out["Content-Encoding"] = encoding
                return Reply(200, http_encoding.encode_body(payload, encoding), out)
        return Reply(200, payload, out)


class RawValue:
    """A `param_x` value as the client sent it, already in ClickHouse's text form for its type (escaped for
    a String, a literal for an Array): the driver passes an object it does not know on as `str(value)`,
    so the engine parses exactly what the client wrote."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class _KeyContext:
    """The request's key where KeyStore.authenticate looks for it: gRPC-style metadata."""

    def __init__(self, key: str) -> None:
        self._metadata = (("authorization", f"Bearer {key}"),) if key else ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def content_type(fmt: str) -> str:
    lowered = fmt.lower()
    return next((kind for prefix, kind in _CONTENT_TYPES if lowered.startswith(prefix)), "application/octet-stream")


def _split_format(sql: str, default: str) -> tuple[str, str]:
    """(format, the statement without its trailing FORMAT clause); the format checked against FORMATS."""
    found = _TRAILING_FORMAT.search(sql)
    name = found.group(1) if found else default
    if found:
        sql = sql[:found.start()]
    canonical = FORMATS.get(name.lower())
    if canonical is None:
        raise ClickHouseError(73, f"Unknown or unsupported output format {name}: this server answers in "
                                  "TabSeparated*, CSV*, JSON*, Native, Arrow, Parquet, RowBinary* and Pretty*")
    return canonical, sql.rstrip().rstrip(";")


def _settings(params: dict[str, str]) -> tuple[dict[str, Any], int, float]:
    """The output settings a request asks for, and its row and time limits (0: the server's)."""
    settings: dict[str, Any] = {}
    for name, value in params.items():
        if name in TRANSPORT or name.startswith("param_") or name in ("max_result_rows", "max_execution_time"):
            continue
        if name in OUTPUT_SETTINGS or name.startswith(OUTPUT_PREFIXES):
            settings[name] = value
            continue
        raise ClickHouseError(164, f"Cannot modify '{name}' setting in readonly mode: this server takes only "
                                   "output-format settings, max_result_rows and max_execution_time")
    if params.get("result_overflow_mode") == "break":
        settings["result_overflow_mode"] = "break"  # the client asked for a cut-short result, not an error
    try:
        max_rows = int(params.get("max_result_rows") or 0)
        timeout_s = float(params.get("max_execution_time") or 0)
    except ValueError as exc:
        raise ClickHouseError(36, f"max_result_rows and max_execution_time take numbers: {exc}") from None
    return settings, max(0, max_rows), max(0.0, timeout_s)


def _form_fields(content_type: str, data: bytes) -> dict[str, str]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + data)
    fields = {}
    for part in message.iter_parts():
        if part.get_filename():
            raise ClickHouseError(36, "external data (files in the form) is not supported: this server only reads")
        name = part.get_param("name", header="content-disposition")
        value = part.get_payload(decode=True)
        fields[str(name)] = value.decode() if isinstance(value, bytes) else str(value)
    return fields


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every reply carries Content-Length
    server: _Server
    timeout = IDLE_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sql http %s: " + format, self.client_address[0], *args)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError as exc:
            self.send_error(400, str(exc))
            return
        reply = self.server.endpoint.handle(self.command, self.path, self.headers, body)
        self.send_response(reply.status)
        for name, value in {**reply.headers, "Content-Length": str(len(reply.body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_HEAD = _serve

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks, total = [], 0
            while size := int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16):
                total += size
                if total > 4 * MAX_BODY_BYTES:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > 4 * MAX_BODY_BYTES:  # compressed bodies are checked again once decompressed
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # idle keep-alive connections must not hold up the ingest's exit
    allow_reuse_address = True
    endpoint: SqlEndpoint

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, address


class SqlHttpServer:
    """The interface on `host:port` (0 picks a free port), serving until `stop()`.

        server = SqlHttpServer(store, keys, "127.0.0.1", 8123).start()
    """

    def __init__(self, store: Store, keys: KeyStore, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
        self.endpoint = SqlEndpoint(store, keys)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("_Server", (_Server,), {"address_family": family})
        try:
            self._http = server_class((host, port), _Handler)
        except OSError as exc:
            self.endpoint.close()
            raise OSError(f"cannot listen on {host}:{port} for the SQL interface ({exc.strerror}): "
                          "--sql-port picks another port, 0 turns it off") from None
        self._http.endpoint = self.endpoint
        self.host, self.port = host, self._http.server_address[1]
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="pulse-sql-http", daemon=True)

    def start(self) -> SqlHttpServer:
        self._thread.start()
        log.info("ClickHouse HTTP interface (read-only SQL for BI tools) on http://%s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._http.shutdown()
        self._http.server_close()
        self.endpoint.close()


def serve_sql(store: Store, keys: KeyStore, host: str, port: int) -> SqlHttpServer | None:
    """The ingest's interface on `host:port`, started (None when `port` is 0: turned off)."""
    return SqlHttpServer(store, keys, host, port).start() if port else None
