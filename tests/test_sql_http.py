"""The ingest's ClickHouse HTTP interface, from another process, as BI tools and notebooks use it.

A real `pulse ingest --auth --sql-port P` in a subprocess, two projects of real emitter data, and
the unmodified clickhouse-connect client; Grafana's and DBeaver's requests replayed as their
drivers send them (clickhouse-go over HTTP: POST, default_format=Native, gzip; the JDBC driver:
RowBinaryWithNamesAndTypes in ClickHouse's compressed blocks, compress=1).
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import clickhouse_connect
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from conftest import ROOT, Ingest, free_port, run_script
from ingest.http_encoding import decompress_blocks

STEPS = 20


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlhttp")
    sql_port = free_port()
    ingest = Ingest(root / "data", "--auth", "--sql-port", str(sql_port)).start()
    ingest.sql_port = sql_port
    ingest.admin = (ingest.data_dir / "admin-key").read_text().strip()
    done = run_script(f"""
        import emitter
        for project in ("alpha", "beta"):
            with emitter.init(project=project, name=project + "-run") as run:
                for step in range({STEPS}):
                    run.log({{"train/loss": 1.0 / (step + 1)}}, step=step)
    """, env={"PULSE_SERVER": ingest.address, "PULSE_API_KEY": ingest.admin, "PULSE_DIR": str(root / "spool"),
              "PULSE_SYSTEM_INTERVAL": "0"})
    assert done.returncode == 0, done.stderr
    yield ingest
    ingest.stop()


@pytest.fixture(scope="module")
def alpha_key(server) -> str:
    return create_key(server, server.admin, "--project", "alpha", "--read-only")


def create_key(server: Ingest, admin_key: str, *flags: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pulse.cli", "keys", "create", *flags], capture_output=True,
                          text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PULSE_SERVER": server.address, "PULSE_API_KEY": admin_key})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1].split()[-1]


def client(server, password: str, **kwargs):
    return clickhouse_connect.get_client(host="127.0.0.1", port=server.sql_port, username="pulse",
                                         password=password, **kwargs)


def http(server, sql: str = "", key: str | None = None, headers: dict | None = None, method: str = "POST",
         **params) -> tuple[int, dict, bytes]:
    """One raw request: (status, headers, body)."""
    url = f"http://127.0.0.1:{server.sql_port}/?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, data=sql.encode() if method == "POST" else None, method=method,
                                     headers=dict(headers or {}))
    if key is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"pulse:{key}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


LOSS = "SELECT project, step, value FROM metrics WHERE key = 'train/loss' AND step < 2 ORDER BY project, step"


def test_clickhouse_connect_reads_with_an_api_key_as_its_password(server):
    ch = client(server, server.admin)
    assert ch.server_version.count(".") >= 2
    assert ch.query(LOSS).result_rows == [("alpha", 0, 1.0), ("alpha", 1, 0.5), ("beta", 0, 1.0), ("beta", 1, 0.5)]
    frame = ch.query_df("SELECT step, value FROM metrics WHERE project = {p:String} ORDER BY step",
                        parameters={"p": "beta"})
    assert list(frame.columns) == ["step", "value"] and len(frame) == STEPS and frame["value"].iloc[3] == 0.25
    table = ch.query_arrow("SELECT project, count() AS n FROM metrics GROUP BY project ORDER BY project")
    assert table.to_pydict() == {"project": ["alpha", "beta"], "n": [STEPS, STEPS]}
    odd = "tab\there 'quoted' back\\slash\nnew line"
    assert ch.query("SELECT {s:String} AS s, {n:Int64} + 1 AS n, {a:Array(String)} AS a",
                    parameters={"s": odd, "n": 41, "a": ["x", "y'z"]}).result_rows == [(odd, 42, ["x", "y'z"])]
    assert ch.query("SELECT count() FROM runs FINAL WHERE name = %(name)s", parameters={"name": "alpha-run"}
                    ).result_rows == [(1,)]


def test_a_wrong_key_or_none_is_refused_as_clickhouse_refuses_a_password(server):
    for password in ("pk_0000_wrong", ""):
        with pytest.raises(DatabaseError) as refused:
            client(server, password)
        assert "516" in str(refused.value) and "API key" in str(refused.value)
    status, headers, body = http(server, "SELECT 1", key="pk_0000_wrong")
    assert status == 401 and headers["X-ClickHouse-Exception-Code"] == "516"
    assert body.startswith(b"Code: 516. DB::Exception: ") and b"(AUTHENTICATION_FAILED)" in body


def test_writes_and_ddl_are_refused_with_readonly(server):
    ch = client(server, server.admin)
    for statement in ("INSERT INTO metrics (project, run_id, key, step, value) VALUES ('alpha', 'x', 'k', 0, 1)",
                      "DROP TABLE metrics", "SELECT * FROM file('/etc/passwd', 'LineAsString')",
                      "SELECT * FROM api_keys"):
        with pytest.raises(DatabaseError) as refused:
            ch.command(statement)
        assert refused.value.code == 164 or "Code: 164" in str(refused.value), statement
    status, headers, body = http(server, "DROP TABLE metrics", key=server.admin)
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "164" and b"DROP" in body
    assert client(server, server.admin).query("SELECT count() FROM metrics").result_rows == [(2 * STEPS,)]


def test_a_project_key_sees_its_project_only_however_it_is_presented(server, alpha_key):
    assert client(server, alpha_key).query("SELECT DISTINCT project FROM metrics").result_rows == [("alpha",)]
    for headers in ({"X-ClickHouse-User": "pulse", "X-ClickHouse-Key": alpha_key},
                    {"Authorization": f"Bearer {alpha_key}"}):
        status, _, body = http(server, "SELECT DISTINCT project FROM runs", headers=headers)
        assert (status, body) == (200, b"alpha\n")
    status, _, body = http(server, method="GET", query="SELECT count() FROM metrics", user="pulse", password=alpha_key)
    assert (status, body) == (200, f"{STEPS}\n".encode())


def _rowbinary_header(body: bytes) -> tuple[list[str], list[str], bytes]:
    stream = io.BytesIO(body)

    def text() -> str:
        size, shift = 0, 0
        while True:
            byte = stream.read(1)[0]
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return stream.read(size).decode()

    count = stream.read(1)[0]
    names = [text() for _ in range(count)]
    return names, [text() for _ in range(count)], stream.read()


CHECKS = {
    "TabSeparated": lambda body: body == b"0\t1\n1\t0.5\n",
    "TabSeparatedWithNamesAndTypes": lambda body: body == b"step\tvalue\nInt64\tFloat64\n0\t1\n1\t0.5\n",
    "JSON": lambda body: [row["value"] for row in json.loads(body)["data"]] == [1, 0.5],
    "JSONEachRow": lambda body: [json.loads(line) for line in body.splitlines()] == [{"step": 0, "value": 1},
                                                                                     {"step": 1, "value": 0.5}],
    "CSVWithNames": lambda body: body == b'"step","value"\n0,1\n1,0.5\n',
    "Native": lambda body: body.startswith(b"\x02\x02\x04step\x05Int64"),
    "Arrow": lambda body: pa.ipc.open_file(pa.py_buffer(body)).read_all().column("value").to_pylist() == [1, 0.5],
    "Parquet": lambda body: pq.read_table(io.BytesIO(body)).column("step").to_pylist() == [0, 1],
    "RowBinaryWithNamesAndTypes": lambda body: _rowbinary_header(body)[:2] == (["step", "value"], ["Int64", "Float64"]),
}


@pytest.mark.parametrize("fmt", sorted(CHECKS))
def test_each_format_comes_back_as_the_engine_writes_it(server, fmt):
    sql = "SELECT step, value FROM metrics WHERE project = 'alpha' AND key = 'train/loss' AND step < 2 ORDER BY step"
    status, headers, body = http(server, sql, key=server.admin, default_format=fmt)
    assert status == 200 and headers["X-ClickHouse-Format"] == fmt and CHECKS[fmt](body), body[:200]
    assert CHECKS[fmt](http(server, f"{sql}\nFORMAT {fmt}", key=server.admin)[2])  # as a FORMAT clause too


def test_compressed_answers_as_jdbc_and_http_clients_ask(server):
    sql = "SELECT step FROM metrics WHERE project = 'beta' ORDER BY step FORMAT TSV"
    plain = http(server, sql, key=server.admin)[2]
    assert decompress_blocks(http(server, sql, key=server.admin, compress="1")[2]) == plain  # checksums checked
    status, headers, body = http(server, sql, key=server.admin, headers={"Accept-Encoding": "gzip"},
                                 enable_http_compression="1")
    assert headers.get("Content-Encoding") == "gzip" and gzip.decompress(body) == plain
    gzipped = gzip.compress(b"SELECT 40 + 2")
    request = urllib.request.Request(f"http://127.0.0.1:{server.sql_port}/", data=gzipped, method="POST",
                                     headers={"Content-Encoding": "gzip", "X-ClickHouse-Key": server.admin})
    with urllib.request.urlopen(request, timeout=60) as reply:
        assert reply.read() == b"42\n"


def test_errors_carry_clickhouse_codes_that_clients_show(server):
    cases = [("SELEC 1", {}, 400, "62"), ("SELECT 1", {"default_format": "Nonsense"}, 400, "73"),
             ("SELECT 1", {"allow_ddl": "1"}, 403, "164"), ("SELECT 1", {"database": "other"}, 404, "81"),
             ("SELECT no_such_column FROM metrics", {}, 400, "47")]
    for sql, params, status, code in cases:
        got, headers, body = http(server, sql, key=server.admin, **params)
        assert (got, headers["X-ClickHouse-Exception-Code"]) == (status, code), body
        assert body.startswith(f"Code: {code}. DB::Exception: ".encode()), body
    assert http(server, method="GET")[2] == b"Ok.\n"  # the health check needs no key
    assert http(server, method="GET", headers={}, query_id="q1")[1]["X-ClickHouse-Query-Id"] == "q1"


def test_grafana_data_source_request_sequence(server, alpha_key):
    """clickhouse-go over HTTP (protocol: http in the data source): every request is a POST with the
    settings in the URL, default_format=Native, gzip asked for; the statements are the connection
    check, the schema browser's and a time series panel's with $__timeFilter/$__timeInterval expanded."""
    auth = {"Authorization": "Basic " + base64.b64encode(f"grafana:{alpha_key}".encode()).decode(),
            "Accept-Encoding": "gzip"}
    settings = {"default_format": "Native", "enable_http_compression": "1", "max_execution_time": "60",
                "database": "default"}
    sequence = [
        "SELECT timeZone()", "SELECT 1", "SELECT version()",
        "SELECT database, name FROM system.tables ORDER BY database, name",
        "SELECT name FROM system.databases",
        "SELECT currentDatabase()",
        "SELECT database, table, name, type, comment FROM system.columns WHERE (database = currentDatabase() "
        "AND table IN ('metrics')) ORDER BY database, table, position",
        "DESCRIBE TABLE metrics",
        "SELECT toStartOfInterval(ts, INTERVAL 1 second) AS time, avg(value) AS loss FROM metrics "
        "WHERE ts >= toDateTime(0) AND ts <= toDateTime(4102444800) AND key = 'train/loss' GROUP BY time ORDER BY time",
    ]
    for sql in sequence:
        status, headers, body = http(server, sql, headers=auth, **settings)
        assert status == 200, (sql, body)
        assert headers["X-ClickHouse-Format"] == "Native" and headers.get("Content-Encoding") == "gzip"
        assert gzip.decompress(body)[:1] != b"", sql
    status, _, body = http(server, sequence[-1] + " FORMAT JSONEachRow", headers={**auth, "Accept-Encoding": ""},
                           **settings)
    assert status == 200 and body.count(b'"loss"') >= 1  # alpha's points, and only alpha's, per second
    assert b"beta" not in http(server, "SELECT DISTINCT project FROM metrics", headers=auth)[2]


def test_dbeaver_jdbc_metadata_sequence(server):
    """The JDBC driver (DBeaver): ClickHouse's compressed blocks (compress=1) of RowBinaryWithNamesAndTypes,
    server info at connect, then the navigator's schemas, tables and columns."""
    sequence = [
        "SELECT currentUser() AS user, timezone() AS timezone, version() AS version LIMIT 1",
        "SELECT name AS TABLE_SCHEM, '' AS TABLE_CATALOG FROM system.databases ORDER BY name",
        "SELECT '' AS TABLE_CAT, t.database AS TABLE_SCHEM, t.name AS TABLE_NAME, t.engine AS TABLE_TYPE, "
        "t.comment AS REMARKS FROM system.tables t WHERE t.database LIKE '%' AND t.name LIKE '%' "
        "AND t.is_temporary = 0",
        "SELECT '' AS TABLE_CAT, database AS TABLE_SCHEM, table AS TABLE_NAME, name AS COLUMN_NAME, type AS TYPE_NAME, "
        "toInt32(position) AS ORDINAL_POSITION FROM system.columns WHERE database LIKE 'default' AND table LIKE "
        "'metrics' AND name LIKE '%' ORDER BY TABLE_SCHEM, TABLE_NAME, ORDINAL_POSITION",
        "SELECT * FROM metrics LIMIT 200",
    ]
    answers = []
    for sql in sequence:
        status, _, body = http(server, sql, key=server.admin, compress="1",
                               default_format="RowBinaryWithNamesAndTypes", result_overflow_mode="break",
                               max_result_rows="200")
        assert status == 200, (sql, body)
        answers.append(_rowbinary_header(decompress_blocks(body)))
    assert answers[0][0] == ["user", "timezone", "version"]
    assert b"default" in answers[1][2]
    assert b"metrics" in answers[2][2] and b"api_keys" not in answers[2][2]
    assert answers[3][2].count(b"\x05value") == 1 and answers[4][0][:2] == ["project", "run_id"]


@pytest.mark.parametrize("sql, answer", [
    ('DESCRIBE TABLE "default"."metrics"', b"project\t"),  # Grafana's column lookup for the query builder
    ("SELECT DISTINCT key FROM metrics SETTINGS max_execution_time=10", b"train/loss\n"),  # Grafana's values
    ("SELECT system.columns.comment AS REMARKS, columns.name FROM system.columns WHERE table = 'metrics' "
     "AND name = 'step'", b"\tstep\n"),  # DBeaver's getColumns
])
def test_bi_tool_statements_pass_the_users_checks(server, alpha_key, sql, answer):
    status, _, body = http(server, sql, key=alpha_key)
    assert status == 200 and body.startswith(answer), body


def test_what_clients_ask_on_connecting_goes_through_the_users_checks(server, alpha_key):
    """No statement is answered outside the checks: the handshakes pass them, and a SETTINGS clause that
    would lift a limit, or anything else the checks refuse, is refused however a client words it."""
    version = client(server, alpha_key).server_version
    status, _, body = http(server, "SELECT currentUser() AS user, timezone() AS timezone, version() AS version "
                                   "LIMIT 1", key=alpha_key)
    assert status == 200 and body.endswith(f"\t{version}\n".encode())
    status, _, body = http(server, "SELECT name, value, readonly FROM system.settings LIMIT 10000", key=alpha_key)
    assert status == 200 and b"\nmax_threads\t" in body and b"\t/" not in body
    for sql, refused in (("SELECT version(), hostName()", b"function hostName() is not allowed"),
                         ("SELECT 1 AS check SETTINGS readonly = 0", b"SETTINGS readonly is not allowed"),
                         ("SELECT name, value, readonly FROM system.server_settings LIMIT 10000",
                          b"table system.server_settings is not readable")):
        status, headers, body = http(server, sql, key=alpha_key)
        assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "164") and refused in body, body


def test_the_grafana_example_dashboards_queries_pass_and_chart_the_project(server, alpha_key):
    """deploy/grafana's panels, with the data source's macros expanded as it expands them."""
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "pulse.json").read_text())
    for panel in dashboard["panels"]:
        sql = panel["targets"][0]["rawSql"].replace("${project}", "alpha")
        sql = sql.replace("$__timeInterval(ts)", "toStartOfInterval(toDateTime(ts), INTERVAL 20 second)")
        for column in ("m.ts", "ts"):
            sql = sql.replace(f"$__timeFilter({column})",
                              f"{column} >= toDateTime(0) AND {column} <= toDateTime(4102444800)")
        status, _, body = http(server, sql + " FORMAT JSONEachRow", key=alpha_key)
        assert status == 200, (panel["title"], body)
        if "metrics AS m" in sql:
            assert {json.loads(line)["series"] for line in body.splitlines()} == {"alpha-run train/loss"}
