"""The ClickHouse cluster deployment (`deploy/cluster/`) and the clustered schema.

No Docker engine runs on these machines, so the cluster configuration is read by
ClickHouse's own config loader (chDB), and every clustered migration is created by the
real engine with the same columns as its unclustered twin.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from test_deploy import CLUSTER_XML, ENVOY, KEEPER_XML, USERS_XML, VARIABLE, calls, services

from ingest.server import SERVICE as TELEMETRY_SERVICE
from ingest.storage import LEDGER, _statements, migration_files, open_store, render
from ingest.sweeps.service import SERVICE as SWEEPS_SERVICE

# -- the cluster -------------------------------------------------------------------------------


def clickhouse_nodes() -> dict[str, dict]:
    return {n: s for n, s in services("cluster").items() if "clickhouse-server" in s["image"]}


def test_cluster_config_is_what_compose_runs():
    remote = ET.parse(CLUSTER_XML).find("remote_servers/pulse")
    placed = {replica.findtext("host"): str(shard_num)
              for shard_num, shard in enumerate(remote.findall("shard"), 1)
              for replica in shard.findall("replica")}
    nodes = clickhouse_nodes()
    assert set(placed) == set(nodes)
    assert len(set(placed.values())) == 2 and len(placed) == 4, "2 shards x 2 replicas"
    for name, node in nodes.items():
        assert node["environment"]["CH_SHARD"] == placed[name], f"{name} sits in another shard"
        assert node["environment"]["CH_REPLICA"] == name, "replica names must be unique cluster-wide"
    keepers = {n: s for n, s in services("cluster").items() if "clickhouse-keeper" in s["image"]}
    assert len(keepers) == 3
    raft = {server.findtext("hostname"): server.findtext("id")
            for server in ET.parse(KEEPER_XML).iter("server")}
    assert raft == {name: keeper["environment"]["KEEPER_SERVER_ID"] for name, keeper in keepers.items()}
    zookeeper = {node.findtext("host") for node in ET.parse(CLUSTER_XML).iter("node")}
    assert zookeeper == set(keepers)
    ingests = [s for s in services("cluster").values() if ("pulse", "ingest") in calls(s)]
    cluster_name = remote.tag
    for service in ingests:
        command = service["command"]
        assert command[command.index("--cluster") + 1] == cluster_name


CHDB_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from chdb import session

    data, config, spec = sys.argv[1], sys.argv[2], json.load(sys.stdin)
    s = session.Session(f"file:{data}?config-file={config}")
    out = {"errors": []}
    for database, statements in spec.get("databases", {}).items():
        s.query(f"CREATE DATABASE {database}")
        s.query(f"USE {database}")
        for sql in statements:
            try:
                s.query(sql)
            except Exception as exc:
                out["errors"].append([database, sql[:300], str(exc)[:500]])
    for key, sql in spec.get("queries", {}).items():
        try:
            out[key] = json.loads(s.query(sql, "JSON").bytes())["data"]
        except Exception as exc:
            out["errors"].append([key, sql[:300], str(exc)[:500]])
    print(json.dumps(out), flush=True)
    os._exit(0)  # closing chDB with replicated tables waits on Keeper: skip it
""")

# A one-node stand-in for the cluster: the `pulse` cluster, the macros, and ClickHouse's
# in-memory test Keeper, enough for the engine to create replicated and Distributed tables.
TEST_CLUSTER_XML = """<clickhouse>
  <zookeeper><implementation>testkeeper</implementation></zookeeper>
  <remote_servers><pulse><shard><replica><host>localhost</host><port>9000</port></replica></shard></pulse>
  </remote_servers>
  <macros><cluster>pulse</cluster><shard>1</shard><replica>r1</replica></macros>
</clickhouse>"""


def chdb(tmp_path: Path, config: Path, spec: dict, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run([sys.executable, "-c", CHDB_SCRIPT, str(tmp_path / "chdb"), str(config)],
                            input=json.dumps(spec), capture_output=True, text=True, timeout=180,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("node", sorted(clickhouse_nodes()))
def test_clickhouse_reads_the_cluster_config_each_node_gets(tmp_path, node):
    environment = clickhouse_nodes()[node]["environment"]
    env = {key: str(value) for key, value in environment.items() if not VARIABLE.search(str(value))}
    env["PULSE_CH_CLUSTER_SECRET"] = "test-secret"
    out = chdb(tmp_path, CLUSTER_XML, {"queries": {
        "clusters": "SELECT shard_num, host_name FROM system.clusters WHERE cluster = 'pulse'",
        "macros": "SELECT macro, substitution FROM system.macros",
    }}, env)
    assert out["errors"] == []
    assert len(out["clusters"]) == 4
    assert {(row["shard_num"], row["host_name"]) for row in out["clusters"]} >= {(int(env["CH_SHARD"]), node)}
    assert {row["macro"]: row["substitution"] for row in out["macros"]} == {
        "cluster": "pulse", "shard": env["CH_SHARD"], "replica": node}


def test_users_file_gives_the_reader_read_only_settings_clickhouse_knows(tmp_path):
    profiles = ET.parse(USERS_XML).find("profiles")
    settings = {setting.tag for profile in profiles for setting in profile}
    assert int(profiles.findtext("pulse_reader/readonly")) >= 1
    users = ET.parse(USERS_XML).find("users")
    assert users.findtext("pulse_reader/profile") == "pulse_reader"
    assert users.findtext("pulse_writer/profile") == "pulse_writer"
    config = tmp_path / "empty.xml"
    config.write_text("<clickhouse/>")
    names = ", ".join(f"'{name}'" for name in sorted(settings))
    out = chdb(tmp_path, config, {"queries": {"known": f"SELECT name FROM system.settings WHERE name IN ({names})"}})
    assert out["errors"] == []
    assert {row["name"] for row in out["known"]} == settings


def test_balancer_sends_sweeps_to_one_replica_and_streams_to_all():
    envoy = yaml.safe_load(ENVOY.read_text())
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    manager = envoy["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]

    def endpoints(cluster: str) -> list[str]:
        return [e["endpoint"]["address"]["socket_address"]["address"]
                for group in clusters[cluster]["load_assignment"]["endpoints"] for e in group["lb_endpoints"]]

    ingests = {n for n, s in services("cluster").items() if ("pulse", "ingest") in calls(s)}
    sweeps = next(r for r in routes if r["match"].get("prefix") == f"/{SWEEPS_SERVICE}/")
    assert routes.index(sweeps) < len(routes) - 1, "the sweep route must come before the catch-all"
    owner = endpoints(sweeps["route"]["cluster"])
    assert len(owner) == 1 and owner[0] in ingests, "exactly one ingest replica owns the sweep controller"
    default = routes[-1]
    assert default["match"] == {"prefix": "/"}
    assert set(endpoints(default["route"]["cluster"])) == ingests
    assert {"header": {"header_name": "x-pulse-run"}, "terminal": True} in default["route"]["hash_policy"]
    assert default["route"]["timeout"] == "0s" and manager["stream_idle_timeout"] == "0s", \
        "a run's stream may live for days"
    for cluster in clusters.values():
        assert cluster["health_checks"][0]["grpc_health_check"]["service_name"] == TELEMETRY_SERVICE


# -- the clustered schema ------------------------------------------------------------------------


def test_every_migration_has_a_clustered_twin():
    unclustered = [(v, n) for v, n, _ in migration_files("unclustered")]
    clustered = [(v, n) for v, n, _ in migration_files("clustered")]
    assert clustered == unclustered


def clustered_statements() -> list[tuple[str, str]]:
    found = [(f"{v:04d}_{n}", s) for v, n, sql in migration_files("clustered")
             for s in _statements(render(sql, "pulse", "clustered"))]
    return [*found, ("ledger", render(LEDGER["clustered"], "pulse", "clustered"))]


def test_clustered_migrations_are_valid_clickhouse_sql(tmp_path):
    statements = clustered_statements()
    config = tmp_path / "empty.xml"
    config.write_text("<clickhouse/>")
    queries = {}
    for i, (_, statement) in enumerate(statements):
        quoted = statement.replace("\\", "\\\\").replace("'", "\\'")
        queries[str(i)] = f"SELECT formatQuery('{quoted}') AS sql"
    out = chdb(tmp_path, config, {"queries": queries})
    assert out["errors"] == []
    for i, (name, _) in enumerate(statements):
        formatted = out[str(i)][0]["sql"]
        assert "ON CLUSTER pulse" in formatted, name
        # Tables are created; the only other statements are ALTERs of a node's local table, and a new
        # column also goes on the Distributed table over them (checked in the next test).
        altered = "_local ON CLUSTER" in formatted or "ADD COLUMN" in formatted
        assert formatted.startswith("CREATE TABLE IF NOT EXISTS") or (
            formatted.startswith("ALTER TABLE") and altered), name


ADD_COLUMN = re.compile(r"ALTER TABLE (\w+)(?: ON CLUSTER '[^']*')? (ADD COLUMN .*)", re.DOTALL)


def test_every_added_column_reaches_the_local_and_the_distributed_tables():
    """chDB's test Keeper keeps replicated tables read-only, so the schema test below leaves ALTERs out:
    here each unclustered ADD COLUMN must appear, word for word, on both clustered tables."""
    def adds(kind: str) -> set[tuple[str, str]]:
        found = set()
        for _, _, sql in migration_files(kind):
            for statement in _statements(render(sql, "pulse", kind) if kind == "clustered" else sql):
                if match := ADD_COLUMN.match(" ".join(statement.split())):
                    found.add((match.group(1), match.group(2)))
        return found

    unclustered, clustered = adds("unclustered"), adds("clustered")
    assert unclustered, "no migration adds a column: this test checks nothing"
    for table, column in unclustered:
        assert (f"{table}_local", column) in clustered, f"{table}_local lacks {column}"
        assert (table, column) in clustered, f"the Distributed {table} lacks {column}"


def expected_sharding_key(table: str, sorting_key: str) -> str:
    keys = [k.strip() for k in sorting_key.split(",")]
    if "project" in keys and "run_id" in keys:
        return "cityHash64(project, run_id)"  # a run's rows stay on one shard
    if "sweep_id" in keys:
        return "cityHash64(project, sweep_id)"  # a sweep's rows (and its trials) stay on one shard
    if keys[:2] == ["project", "name"]:
        return "cityHash64(project, name)"  # an artifact's versions, files and aliases stay on one shard
    return {"api_keys": "cityHash64(key_id)", "artifact_blobs": "cityHash64(project, sha256)"}.get(
        table, f"<decide how {table} is sharded>")


def test_clustered_schema_is_the_unclustered_schema_sharded_and_replicated(tmp_path):
    config = tmp_path / "cluster.xml"
    config.write_text(TEST_CLUSTER_XML)
    no_on_cluster = re.compile(r"\s+ON CLUSTER\s+'[^']*'")
    spec = {
        "databases": {
            "unclustered": [s for _, _, sql in migration_files("unclustered") for s in _statements(sql)
                            if " ADD COLUMN " not in " ".join(s.split())],  # compared apart, above
            # ALTERs (projections) leave the columns alone, and chDB's test Keeper keeps replicated
            # tables read-only; test_clustered_migrations_are_valid_clickhouse_sql parses them.
            "clustered": [no_on_cluster.sub("", s) for _, s in clustered_statements()
                          if not s.lstrip().upper().startswith("ALTER")],
        },
        "queries": {
            "columns": "SELECT database, table, name, type, default_kind, default_expression, compression_codec "
                       "FROM system.columns WHERE database IN ('unclustered', 'clustered') "
                       "ORDER BY database, table, position",
            "tables": "SELECT database, name, engine, engine_full, sorting_key FROM system.tables "
                      "WHERE database IN ('unclustered', 'clustered')",
        },
    }
    out = chdb(tmp_path, config, spec)
    assert out["errors"] == []
    columns: dict[tuple[str, str], list] = {}
    for row in out["columns"]:
        columns.setdefault((row["database"], row["table"]), []).append(
            [row[k] for k in ("name", "type", "default_kind", "default_expression", "compression_codec")])
    tables = {(row["database"], row["name"]): row for row in out["tables"]}
    public = sorted(name for database, name in tables if database == "unclustered" and name != "schema_migrations")
    assert public, "the unclustered migrations created no table"
    for name in public:
        twin, local, distributed = (tables[("unclustered", name)], tables[("clustered", f"{name}_local")],
                                    tables[("clustered", name)])
        assert columns[("clustered", name)] == columns[("unclustered", name)], f"{name}: columns differ"
        assert columns[("clustered", f"{name}_local")] == columns[("unclustered", name)], f"{name}_local differs"
        assert local["engine"] == f"Replicated{twin['engine']}", name
        assert local["sorting_key"] == twin["sorting_key"], name
        assert f"'/clickhouse/tables/{{shard}}/clustered/{name}_local', '{{replica}}'" in local["engine_full"]
        assert distributed["engine"] == "Distributed"
        shard_key = expected_sharding_key(name, twin["sorting_key"])
        assert distributed["engine_full"] == f"Distributed('pulse', 'clustered', '{name}_local', {shard_key})"
    assert tables[("clustered", "schema_migrations")]["engine"] == "ReplicatedMergeTree"


def test_clustered_store_needs_a_server_with_that_cluster(tmp_path):
    from fixtures.clickhouse_http import serve_clickhouse_http

    with pytest.raises(ValueError, match="not the embedded chdb"):
        open_store(f"chdb://{tmp_path / 'embedded'}", cluster="pulse")
    with serve_clickhouse_http(tmp_path / "server") as url:
        with pytest.raises(ValueError, match="has no cluster 'nosuch'"):
            open_store(url, cluster="nosuch")
        with pytest.raises(ValueError, match="name the cluster"):
            open_store(url, migrations="clustered")
    with pytest.raises(ValueError, match="bad cluster name"):
        render("ON CLUSTER '{cluster}'", "x'; DROP TABLE runs; --", "default")
