"""Users' SQL is an allowlist: hostile statements are refused by name on the embedded engine and
over HTTP, every function the engine has but the list lacks is refused, and limits hold."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading

import pytest

from conftest import ROOT, wait_for
from fixtures.clickhouse_http import serve_clickhouse_http
from ingest import query, sql_functions, sql_guard
from ingest.query import QueryRejected, project_filters, run_query
from ingest.storage import ClickHouseStore, open_store, query_scope


@pytest.fixture(scope="module", params=["chdb", "http"])
def store(request, tmp_path_factory):
    with contextlib.ExitStack() as stack:
        if request.param == "chdb":
            url = f"chdb://{tmp_path_factory.mktemp('guard-chdb')}"
        else:
            url = stack.enter_context(serve_clickhouse_http(tmp_path_factory.mktemp("guard-http")))
        s = open_store(url)
        s.command("INSERT INTO runs (project, run_id, name) VALUES ('mine', 'r1', 'one'), ('theirs', 'r2', 'two')")
        yield s
        s.close()


def refused(store, sql: str, filters: dict | None = None) -> str:
    with pytest.raises(QueryRejected) as caught:
        run_query(store, sql, filters=filters)
    return str(caught.value)


HOSTILE = [
    # files, URLs, other servers, programs
    ("SELECT file('/etc/passwd')", "function file() is not allowed"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table function file() is not allowed"),
    ("SELECT * FROM url('http://127.0.0.1:9/', 'CSV', 'a String')", "table function url() is not allowed"),
    ("SELECT * FROM s3('http://127.0.0.1:9/b/k')", "table function s3() is not allowed"),
    ("SELECT * FROM remote('127.0.0.1:9000', system.one)", "table function remote() is not allowed"),
    ("SELECT * FROM mysql('h', 'd', 't', 'u', 'p')", "table function mysql() is not allowed"),
    ("SELECT * FROM executable('cat /etc/passwd', 'LineAsString', 'x String')", "table function executable()"),
    ("SELECT * FROM python('x')", "table function python() is not allowed"),
    ("SELECT dictGet('d', 'a', 1)", "function dictGet() is not allowed"),
    ("SELECT joinGet('api_keys', 'key_id', 1)", "function joinGet() is not allowed"),
    ("SELECT aiGenerate('hello')", "function aiGenerate() is not allowed"),
    # the server's identity, state and settings; denial of service
    ("SELECT hostName(), version()", "function hostName() is not allowed"),
    ("SELECT getSetting('max_memory_usage')", "function getSetting() is not allowed"),
    ("SELECT sleep(3)", "function sleep() is not allowed"),
    ("SELECT throwIf(1)", "function throwIf() is not allowed"),
    ("SELECT filesystemAvailable()", "function filesystemAvailable() is not allowed"),
    # case, aliases and comments change nothing
    ("select FILE('/etc/passwd')", "function FILE() is not allowed"),
    ("SELECT `file`('/etc/passwd')", "function file() is not allowed"),
    ("SELECT FQDN(), QUERY_ID()", "function FQDN() is not allowed"),
    ("SELECT hostname()", "function hostname() is not allowed"),
    ("SELECT /* SELECT 1 */ file(/* x */ '/etc/passwd') -- trailing", "function file() is not allowed"),
    ("SeLeCt * FrOm FiLe('/etc/passwd')", "table function FiLe() is not allowed"),
    # in subqueries, CTEs, lambdas, joins, IN, APPLY
    ("SELECT * FROM (SELECT file('/etc/passwd'))", "function file() is not allowed"),
    ("SELECT 1 WHERE 1 IN (SELECT length(file('/etc/passwd')))", "function file() is not allowed"),
    ("WITH x AS (SELECT file('/etc/passwd') AS f) SELECT * FROM x", "function file() is not allowed"),
    ("WITH file('/etc/passwd') AS f SELECT f", "function file() is not allowed"),
    ("SELECT arrayMap(p -> file(p), ['/etc/passwd'])", "function file() is not allowed"),
    ("SELECT * FROM runs JOIN (SELECT hostName() AS run_id) USING run_id", "function hostName() is not allowed"),
    ("SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)", "function file() is not allowed"),
    ("SELECT sumIf(length(file('/etc/passwd')), 1)", "function file() is not allowed"),
    # view() and input()
    ("SELECT * FROM view(SELECT 1)", "table function view() is not allowed"),
    ("SELECT * FROM view(SELECT file('/etc/passwd'))", "table function view() is not allowed"),
    ("SELECT * FROM input('a String')", "table function input() is not allowed"),
    # tables: the ingest's own, other databases, system tables
    ("SELECT * FROM api_keys", "table api_keys is not readable"),
    ("SELECT key_id FROM runs JOIN api_keys ON 1", "table api_keys is not readable"),
    ("SELECT 'x' IN api_keys", "table api_keys is not readable"),
    ("SELECT * FROM schema_migrations", "table schema_migrations is not readable"),
    ("WITH api_keys AS (SELECT 1) SELECT * FROM api_keys", "WITH api_keys would stand for table api_keys"),
    ("SELECT * FROM (WITH api_keys AS (SELECT 1) SELECT 1), api_keys", "WITH api_keys would stand for table"),
    ("SELECT * FROM system.processes", "table system.processes is not readable"),
    ("SELECT * FROM system.query_log", "table system.query_log is not readable"),
    ("SELECT * FROM system.server_settings", "table system.server_settings is not readable"),
    ("SELECT path FROM system.settings", "Unknown expression identifier `path`"),
    ("SELECT * FROM system.users", "table system.users is not readable"),
    ("SELECT 1 WHERE 'x' IN system.tables", "IN system.tables: write IN (SELECT ...)"),
    ("SELECT * FROM information_schema.tables", "table information_schema.tables is not readable"),
    ("SELECT * FROM INFORMATION_SCHEMA.TABLES", "table INFORMATION_SCHEMA.TABLES is not readable"),
    ("SELECT * FROM other.runs", "table other.runs is not readable"),
    ("SELECT * FROM `system.one`", "table system.one is not readable"),
    ("SELECT * FROM {t:Identifier}", "query parameter {t:Identifier} may not stand for a name"),
    # statements that are not SELECTs; clauses that change settings or where results go
    ("SHOW PROCESSLIST", "got SHOW PROCESSLIST"),
    ("SHOW CREATE TABLE api_keys", "got SHOW CREATE"),
    ("SHOW DATABASES", "SHOW TABLES may not use databases"),
    ("SHOW TABLES FROM system", "SHOW TABLES FROM system"),
    ("SHOW COLUMNS FROM api_keys", "table api_keys is not readable"),
    ("DESCRIBE TABLE api_keys", "table api_keys is not readable"),
    ("DESCRIBE TABLE file('/etc/passwd')", "got DESCRIBE"),
    ("DESCRIBE (SELECT file('/etc/passwd'))", "got DESCRIBE"),
    ("EXPLAIN SELECT 1", "got EXPLAIN"),
    ("EXISTS TABLE api_keys", "got EXISTS"),
    ("SET max_memory_usage = 0", "got SET"),
    ("INSERT INTO runs (project) SELECT 'x'", "got INSERT"),
    ("KILL QUERY WHERE 1", "got KILL"),
    ("SYSTEM SHUTDOWN", "got SYSTEM"),
    # SETTINGS may only lower the server's limits
    ("SELECT 1 SETTINGS readonly = 0", "SETTINGS readonly is not allowed: a query may only lower"),
    ("SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", "SETTINGS readonly is not allowed"),
    ("SELECT * FROM runs SETTINGS additional_table_filters = {'runs': '1'}",
     "SETTINGS additional_table_filters is not allowed"),
    ("SELECT 1 UNION ALL SELECT 2 SETTINGS max_threads = 1, allow_ddl = 1", "SETTINGS allow_ddl is not allowed"),
    ("SELECT 1 SETTINGS max_threads = DEFAULT", "SETTINGS max_threads = DEFAULT is not allowed"),
    ("SELECT {x:UInt8} SETTINGS param_x = 1", "SETTINGS param_x is not allowed"),
    ("SELECT 1 SETTINGS max_threads = -1", "SETTINGS max_threads = -1: give a number of at least 0"),
    ("SELECT 1 SETTINGS max_result_rows = 'many'", "SETTINGS max_result_rows = 'many': give a number"),
    ("SELECT 1 SETTINGS max_execution_time = NULL", "SETTINGS max_execution_time = NULL: give a number"),
    ("SHOW TABLES SETTINGS max_threads = 1", "SETTINGS clauses are not allowed"),
    ("SELECT 1 FORMAT CSV", "FORMAT clauses are not allowed"),
]
OUTFILES = [
    "SELECT 1 INTO OUTFILE '{path}'",
    "SELECT 1 INTO OUTFILE '{path}' TRUNCATE FORMAT CSV",
    "SELECT 1 INTO OUTFILE '{path}' AND STDOUT",
    "SHOW TABLES INTO OUTFILE '{path}' TRUNCATE",
    "SHOW COLUMNS FROM runs INTO OUTFILE '{path}'",
    "DESCRIBE TABLE runs INTO OUTFILE '{path}'",
    "WITH 1 AS x SELECT x INTO OUTFILE '{path}' APPEND",
]


@pytest.mark.parametrize("sql, message", HOSTILE)
def test_hostile_sql_is_refused_naming_what_was_refused(store, sql, message):
    assert message in refused(store, sql)


@pytest.mark.parametrize("template", OUTFILES)
def test_into_outfile_is_refused_on_every_verb_and_writes_no_file(store, template, tmp_path):
    path = tmp_path / "written"
    message = refused(store, template.format(path=path))
    assert "INTO OUTFILE is not allowed" in message or "got DESCRIBE" in message
    assert not path.exists()


ALLOWED = [
    ("SELECT run_id FROM runs FINAL ORDER BY run_id", [{"run_id": "r1"}]),
    ("SELECT count() AS n FROM default.runs", [{"n": 1}]),
    ("WITH x AS (SELECT run_id FROM runs) SELECT count() AS n FROM x", [{"n": 1}]),
    ("WITH runs AS (SELECT 'shadow' AS run_id) SELECT run_id FROM runs", [{"run_id": "shadow"}]),
    ("SELECT run_id FROM runs WHERE run_id IN (SELECT run_id FROM runs)", [{"run_id": "r1"}]),
    ("SELECT countIf(number > 0) AS a, SUMIf(number, 1) AS b, minIfOrNull(number, 1) AS c FROM numbers(3)",
     [{"a": 2, "b": 3, "c": 0}]),
    ("SELECT arrayMap(x -> x * 2, [1, 2]) AS a, lcase('A') AS b, JSONExtractInt('{\"a\": 3}', 'a') AS c",
     [{"a": [2, 4], "b": "a", "c": 3}]),
    ("SELECT number, row_number() OVER (ORDER BY number DESC) AS r FROM numbers(2) ORDER BY number",
     [{"number": 0, "r": 2}, {"number": 1, "r": 1}]),
    ("SELECT CASE WHEN 1 THEN 'y' END AS c, 1::String AS s, INTERVAL 1 DAY + toDate('2020-01-01') AS d",
     None),
    ("SELECT name FROM system.tables WHERE name = 'runs'", [{"name": "runs"}]),
    ("SELECT count() > 0 AS ok FROM system.columns WHERE table = 'metrics'", [{"ok": True}]),
    ("SELECT count() AS n FROM system.columns WHERE table = 'api_keys'", [{"n": 0}]),
    ("SELECT count() AS n FROM system.tables AS t WHERE t.name = 'api_keys'", [{"n": 0}]),
    ("SELECT dummy FROM system.one", [{"dummy": 0}]),
    ("SHOW TABLES LIKE 'run%'", [{"name": "runs"}]),
    ("SHOW COLUMNS FROM runs LIKE 'run_id'", [{"field": "run_id", "type": "String", "null": "NO", "key": "PRI",
                                              "default": "", "extra": ""}]),
    ("DESC runs", None),
    # what BI tools send: Grafana's qualified DESCRIBE and SETTINGS, DBeaver's qualified columns, handshakes
    ('DESCRIBE TABLE "default"."runs"', None),
    ("SELECT system.columns.name AS a, columns.type AS b FROM system.columns WHERE table = 'runs' "
     "AND name = 'run_id'", [{"a": "run_id", "b": "String"}]),
    ("SELECT system.tables.name AS a, tables.name AS b, t.name AS c FROM system.tables AS t WHERE t.name = 'runs'",
     [{"a": "runs", "b": "runs", "c": "runs"}]),
    ("SELECT count() AS n FROM runs SETTINGS max_execution_time = 10, max_threads = 1", [{"n": 1}]),
    ("SELECT version() = (SELECT version()) AS v, currentUser() != '' AS u, timezone() != '' AS t",
     [{"v": True, "u": True, "t": True}]),
    ("SELECT value FROM system.settings WHERE name = 'readonly'", [{"value": "2"}]),
    ("SELECT 1 AS one -- a comment\n", [{"one": 1}]),
]


@pytest.mark.parametrize("sql, rows", ALLOWED)
def test_allowed_sql_runs_and_a_scoped_key_sees_its_rows_only(store, sql, rows):
    table = run_query(store, sql, filters=project_filters(store, "mine"))
    if rows is not None:
        assert table.to_pylist() == rows


def test_a_settings_clause_lowers_the_server_limits_and_never_raises_them(store, monkeypatch):
    monkeypatch.setenv("PULSE_QUERY_MAX_ROWS_TO_READ", "500")
    for asked in ("1000000", "0"):  # higher than the server's, and ClickHouse's "no limit": the server's holds
        message = refused(store, f"SELECT count() FROM numbers(1000) SETTINGS max_rows_to_read = {asked}")
        assert "max rows: 500.00" in message, message
    assert run_query(store, "SELECT count() AS n FROM numbers(400) SETTINGS max_rows_to_read = 10000"
                     ).to_pylist() == [{"n": 400}]
    assert "max rows: 100.00" in refused(store, "SELECT count() FROM numbers(400) SETTINGS max_rows_to_read = 100")
    message = refused(store, "SELECT number FROM numbers(10) SETTINGS max_result_rows = 3")
    assert "Limit for result exceeded, max rows: 3.00" in message
    # the lowest of several wins, and what is sent carries no SETTINGS clause of its own
    prepared = query._prepared(store, "SELECT * FROM (SELECT 1 SETTINGS max_threads = 3) SETTINGS max_threads = 2")
    assert dict(prepared.settings) == {"max_threads": 2} and "SETTINGS" not in prepared.sql
    settings = query._users_settings(query.Limits(), 0, 0, None, asked={name: 1 for name in sql_guard.LIMIT_SETTINGS})
    assert all(settings[name] == 1 for name in sql_guard.LIMIT_SETTINGS)  # each one a limit the server sets


def test_the_settings_clients_read_on_connecting_hold_no_paths(store):
    table = run_query(store, "SELECT name, value, readonly FROM system.settings LIMIT 10000")
    assert table.num_rows > 100 and "max_threads" in table.column("name").to_pylist()
    assert not [v for v in table.column("value").to_pylist() if v.startswith("/")]
    columns = run_query(store, "SELECT * FROM system.settings LIMIT 1").column_names
    assert columns == ["name", "value", "changed", "type", "description", "readonly"]


def test_system_tables_hide_paths_and_the_ingest_own_tables(store):
    names = run_query(store, "SHOW TABLES").column("name").to_pylist()
    assert set(names) == set(sql_guard.PUBLIC_TABLES) & set(names) and "runs" in names and "api_keys" not in names
    columns = run_query(store, "SELECT * FROM system.tables LIMIT 1").column_names
    assert "data_paths" not in columns and "metadata_path" not in columns
    assert "Unknown expression identifier `data_paths`" in refused(store, "SELECT data_paths FROM system.tables")


# -- the walk over the engine's functions ------------------------------------------------------------


def parse_all(store, statements: list[str]) -> list[dict]:
    """ClickHouse's parser over many statements in one call."""
    table = store.read_only_arrow("SELECT parseQueryToJSON(q) AS tree FROM (SELECT arrayJoin({qs:Array(String)}) AS q)",
                                  {"qs": statements}, {"readonly": 2})
    return [json.loads(tree) for tree in table.column("tree").to_pylist()]


def engine_functions(store) -> list[tuple[str, bool, bool]]:
    rows = store.query_rows("SELECT name, is_aggregate, case_insensitive FROM system.functions")
    return [(name, bool(aggregate), bool(insensitive)) for name, aggregate, insensitive in rows]


# Arguments every function parses with (CAST, substring and position have syntax of their own);
# view() takes a query.
ARGUMENTS = "(1, 'String')"
TABLE_ARGUMENTS = {"view": "(SELECT 1)", "viewIfPermitted": "(SELECT 1 ELSE null('a UInt8'))"}


def is_allowed(name: str) -> bool:
    return name in sql_functions.FUNCTIONS or name.lower() in sql_functions.CASE_INSENSITIVE


def test_every_function_of_the_engine_off_the_list_is_refused(store):
    functions = engine_functions(store)
    assert len(functions) > 1000
    names = {name for name, _, _ in functions}
    refused_names = sorted(name for name in names if not is_allowed(name))
    assert {"file", "hostName", "getSetting", "dictGet", "joinGet", "sleep", "uptime"} <= set(refused_names)
    candidates = list(refused_names)
    candidates += [name.upper() for name, _, insensitive in functions if insensitive and name in refused_names]
    candidates += [name + combinator for name, aggregate, _ in functions if aggregate and name in refused_names
                   for combinator in ("If", "State", "OrNull")]
    catalog = sql_guard.Catalog("default", frozenset())
    statements = [f"SELECT `{name}`{ARGUMENTS}" for name in candidates]
    for name, tree in zip(candidates, parse_all(store, statements), strict=True):
        with pytest.raises(QueryRejected, match=rf"function {name}\(\) is not allowed"):
            sql_guard.inspect(tree, catalog)
    # the same names as table functions, and the engine's table functions off their own short list
    table_functions = [n for (n,) in store.query_rows("SELECT name FROM system.table_functions")]
    candidates = sorted(set(refused_names) | {n for n in table_functions if n not in sql_functions.TABLE_FUNCTIONS})
    trees = parse_all(store, [f"SELECT * FROM `{name}`{TABLE_ARGUMENTS.get(name, ARGUMENTS)}" for name in candidates])
    for name, tree in zip(candidates, trees, strict=True):
        with pytest.raises(QueryRejected, match=rf"table function {name}\(\) is not allowed"):
            sql_guard.inspect(tree, catalog)
    # and through the whole path, a sample of them
    for name in refused_names[:: max(1, len(refused_names) // 25)]:
        assert f"function {name}() is not allowed" in refused(store, f"SELECT `{name}`{ARGUMENTS}")


def test_the_allowed_functions_pass_the_checks(store):
    allowed = sorted(name for name, _, _ in engine_functions(store) if is_allowed(name))
    assert len(allowed) > 1000
    catalog = sql_guard.Catalog("default", frozenset())
    for tree in parse_all(store, [f"SELECT `{name}`{ARGUMENTS}" for name in allowed]):
        sql_guard.inspect(tree, catalog)  # raises for a refused one
    for sql in ("SELECT lower('A'), toString(1), now(), arrayJoin([1]), quantile(0.5)(1), uniqExact(1)",
                "SELECT cityHash64('a'), JSONExtractString('{}', 'a'), toStartOfDay(now()), currentDatabase()"):
        run_query(store, sql)


def test_the_dashboard_queries_pass_the_checks(store):
    from dashboard import queries

    catalog = sql_guard.Catalog("default", frozenset())
    statements = [v for k, v in vars(queries).items() if k.isupper() and isinstance(v, str) and "SELECT" in v]
    for tree in parse_all(store, statements):
        sql_guard.inspect(tree, catalog)


# -- limits ----------------------------------------------------------------------------------------------


MEMORY_PROBE = textwrap.dedent("""
    import json, resource, sys
    sys.path.insert(0, sys.argv[2])
    from ingest.query import QueryRejected, run_query
    from ingest.storage import open_store

    store = open_store("chdb://" + sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        run_query(store, "SELECT length(groupArray(number)) FROM numbers(1000000000)")
        message = ""
    except QueryRejected as exc:
        message = str(exc)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"message": message, "grew_mb": (after - before) / 1024}))
""")


def test_a_query_past_its_memory_bound_is_refused_while_the_process_stays_small(tmp_path):
    """groupArray over 1e9 numbers needs about 8 GB; with a 256 MiB bound it is refused near there."""
    done = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "chdb"), str(ROOT)],
                          capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PULSE_QUERY_MAX_MEMORY": "256M"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "memory limit exceeded" in out["message"] and "maximum: 256.00 MiB" in out["message"]
    assert out["grew_mb"] < 1024


def test_limits_come_from_the_environment_and_bad_values_say_which(monkeypatch):
    monkeypatch.setenv("PULSE_QUERY_MAX_MEMORY", "1.5G")
    monkeypatch.setenv("PULSE_QUERY_MAX_THREADS", "2")
    limits = query.Limits.from_env()
    assert limits.max_memory == 3 << 29 and limits.settings()["max_threads"] == 2
    monkeypatch.setenv("PULSE_QUERY_MAX_ROWS_TO_READ", "lots")
    with pytest.raises(ValueError, match="PULSE_QUERY_MAX_ROWS_TO_READ='lots'"):
        query.Limits.from_env()


def test_rows_read_and_result_size_are_bounded(store, monkeypatch):
    monkeypatch.setenv("PULSE_QUERY_MAX_ROWS_TO_READ", "1000")
    assert "max_rows_to_read" in refused(store, "SELECT count() FROM numbers(100000)")
    monkeypatch.delenv("PULSE_QUERY_MAX_ROWS_TO_READ")
    monkeypatch.setenv("PULSE_QUERY_MAX_RESULT_BYTES", "10000")
    assert "Limit for result exceeded" in refused(store, "SELECT repeat('x', 1000) FROM numbers(100)")


def test_queries_past_the_concurrency_bound_are_refused_not_queued_forever(store, monkeypatch):
    monkeypatch.setenv("PULSE_QUERY_CONCURRENT", "1")
    monkeypatch.setenv("PULSE_QUERY_QUEUE_TIMEOUT_S", "0.2")
    slow = "SELECT count() FROM numbers(1000000000) WHERE sipHash64(number) = 0"
    done = threading.Event()

    def occupy() -> None:
        with contextlib.suppress(QueryRejected):
            run_query(store, slow, timeout_s=2)
        done.set()

    query.check_read_only(store, "SELECT 1")  # parsed now: the HTTP fixture runs one statement at a time
    threading.Thread(target=occupy, daemon=True).start()
    wait_for(lambda: 1 in query._slots and query._slots[1]._value == 0 or done.is_set(), what="the slow query")
    if not done.is_set():
        assert "queries are running already" in refused(store, "SELECT 1")
    done.wait(30)


# -- a server's own users' user: the settings its row policies read ------------------------------------


def test_a_users_connection_of_its_own_gets_the_project_settings(tmp_path):
    """The HTTP fixture has no custom settings, so it names the first one it was sent."""
    with serve_clickhouse_http(tmp_path / "a") as url:
        store = ClickHouseStore(url, query_url=url)
        try:
            store.command("SELECT 1")  # the writer's client gets no such settings
            with pytest.raises(QueryRejected, match="SQL_pulse_"):
                run_query(store, "SELECT 1", filters=project_filters(store, "mine"))
        finally:
            store.close()
    assert query_scope("mine") == {"SQL_pulse_project": "mine", "SQL_pulse_all_projects": "0"}
    assert query_scope(None) == {"SQL_pulse_project": "", "SQL_pulse_all_projects": "1"}


LOCAL_PARSER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[2])
    from ingest import query
    from ingest.storage import open_store

    store = open_store(sys.argv[1])
    query._local_parsers[store.url] = query._LocalParser()  # as for a server older than 26.8
    out = {}
    for sql in ("SELECT count() AS n FROM runs", "SELECT file('/etc/passwd')", "SELECT * FROM api_keys",
                "SHOW TABLES LIKE 'run%'", "SELECT 1 INTO OUTFILE '/nonexistent/x'"):
        try:
            out[sql] = query.run_query(store, sql).to_pylist()
        except query.QueryRejected as exc:
            out[sql] = str(exc)
    print(json.dumps(out))
""")


def test_a_server_without_parse_query_to_json_is_checked_by_the_embedded_parser(tmp_path):
    with serve_clickhouse_http(tmp_path / "http") as url:
        done = subprocess.run([sys.executable, "-c", LOCAL_PARSER, url, str(ROOT)], capture_output=True, text=True,
                              timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["SELECT count() AS n FROM runs"] == [{"n": 0}]
    assert "function file() is not allowed" in out["SELECT file('/etc/passwd')"]
    assert "table api_keys is not readable" in out["SELECT * FROM api_keys"]
    assert out["SHOW TABLES LIKE 'run%'"] == [{"name": "runs"}]
    assert "INTO OUTFILE is not allowed" in out["SELECT 1 INTO OUTFILE '/nonexistent/x'"]


# -- the deploy files for a server's users' user ---------------------------------------------------------


def test_the_users_sql_grants_and_policies_are_valid_clickhouse_sql_covering_every_public_table(store):
    import xml.etree.ElementTree as ET

    from ingest.storage import _statements

    deploy = ROOT / "deploy" / "clickhouse"
    statements = _statements((deploy / "users-sql.sql").read_text())
    users = ET.parse(deploy / "users.d" / "pulse-query.xml").getroot()
    policy = users.find("users/pulse_query/databases/default")
    filters = {table.tag: table.findtext("filter") for table in policy}
    expressions = sorted(set(filters.values())) + ["1"]
    formatted = [row[0] for row in store.query_rows(
        "SELECT formatQuerySingleLine(q) FROM (SELECT arrayJoin({qs:Array(String)}) AS q)",
        {"qs": statements + [f"SELECT {e}" for e in expressions]})]
    policies = [f for f in formatted if f.startswith("CREATE ROW POLICY")]
    for table in sql_guard.PUBLIC_TABLES:
        assert all(f"default.{table}," in p or p.count(f"default.{table} ") for p in policies), table
        assert table in filters and f"{table}_local" in filters
        for user in ("pulse_writer", "pulse_reader"):
            assert users.findtext(f"users/{user}/databases/default/{table}/filter") == "1"
    assert "getSetting('SQL_pulse_project')" in filters["runs"]
    grants = [g.text for g in users.iter("query")]
    assert "GRANT SELECT ON default.api_keys" not in grants and all(g.startswith("GRANT SELECT ON") for g in grants)
    profile = {s.tag for s in users.find("profiles/pulse_query") if s.tag != "constraints"}
    known = {name for (name,) in store.query_rows("SELECT name FROM system.settings")}
    assert profile - known == {"SQL_pulse_project", "SQL_pulse_all_projects"}
