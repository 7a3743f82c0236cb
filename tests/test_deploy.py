"""The deployment: compose stacks, the image, the ClickHouse cluster, the clustered schema.

No Docker engine runs on these machines, so these tests check everything short of
starting containers: the compose files parse and hang together, every container runs a
real Pulse command, health checks gate the start order, no secret sits outside the
`.env` defaults, the Dockerfile keeps its promises, the cluster configuration is read by
ClickHouse's own config loader (chDB), and every clustered migration is created by the
real engine with the same columns as its unclustered twin.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from conftest import free_port
from ingest.server import SERVICE as TELEMETRY_SERVICE
from ingest.storage import LEDGER, _statements, migration_files, open_store, render
from ingest.sweeps.service import SERVICE as SWEEPS_SERVICE

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = {"single": DEPLOY / "docker-compose.yml", "cluster": DEPLOY / "cluster" / "docker-compose.yml"}
CLUSTER_XML = DEPLOY / "cluster" / "clickhouse" / "config.d" / "cluster.xml"
KEEPER_XML = DEPLOY / "cluster" / "keeper" / "keeper_config.xml"
USERS_XML = DEPLOY / "clickhouse" / "users.d" / "pulse-users.xml"
ENVOY = DEPLOY / "cluster" / "envoy.yaml"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY", re.I)
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
PULSE_CALL = re.compile(r"(?:^|[\s;&|(])pulse\s+([a-z][\w-]*)")
MODULE_CALL = re.compile(r"(?:^|[\s;&|(])python3?\s+-m\s+([\w.]+)")


def load_compose(name: str) -> dict:
    return yaml.safe_load(COMPOSE[name].read_text())


def services(name: str) -> dict[str, dict]:
    return load_compose(name)["services"]


def env_defaults(name: str) -> dict[str, str]:
    values = {}
    for line in (COMPOSE[name].parent / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def is_pulse_image(service: dict) -> bool:
    return "build" in service


def calls(service: dict) -> list[tuple[str, str]]:
    """The Pulse programs a service's command runs: ("pulse", sub) or ("module", name)."""
    command = service.get("command") or []
    text = command if isinstance(command, str) else " ".join(command)
    return ([("pulse", sub) for sub in PULSE_CALL.findall(text)]
            + [("module", module) for module in MODULE_CALL.findall(text)])


def all_strings(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from all_strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from all_strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


PROGRAMS = sorted({call for name in COMPOSE for svc in services(name).values() for call in calls(svc)})


# -- compose -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE)
def test_compose_file_parses_and_refers_only_to_what_it_defines(name):
    compose = load_compose(name)
    defined_volumes = set(compose.get("volumes") or {})
    for service_name, service in compose["services"].items():
        assert service.get("image"), f"{service_name}: no image"
        for target in service.get("depends_on") or {}:
            assert target in compose["services"], f"{service_name} depends on unknown {target}"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE[name].parent / source).exists(), f"{service_name}: {source} is missing"
            else:
                assert source in defined_volumes, f"{service_name}: volume {source} is not declared"
    build = next(s["build"] for s in compose["services"].values() if "build" in s)
    assert (COMPOSE[name].parent / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"


@pytest.mark.parametrize("name", COMPOSE)
def test_every_pulse_container_runs_a_pulse_program(name):
    for service_name, service in services(name).items():
        if is_pulse_image(service):
            assert calls(service), f"{service_name} runs no `pulse` subcommand: {service.get('command')}"


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: " ".join(p))
def test_the_program_a_container_runs_exists(program):
    kind, name = program
    module = ["pulse.cli", name] if kind == "pulse" else [name]
    result = subprocess.run([sys.executable, "-m", *module, "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, f"`{' '.join(program)} --help` failed:\n{result.stderr[-2000:]}"
    assert "usage:" in result.stdout


@pytest.mark.parametrize("name", COMPOSE)
def test_servers_have_health_checks_and_dependents_wait_for_them(name):
    all_services = services(name)
    for service_name, service in all_services.items():
        if service.get("restart", "no") != "no":  # a long-running server
            assert service.get("healthcheck", {}).get("test"), f"{service_name} has no health check"
        for target, spec in (service.get("depends_on") or {}).items():
            assert isinstance(spec, dict) and "condition" in spec, f"{service_name} -> {target}: no condition"
            if spec["condition"] == "service_healthy":
                assert all_services[target].get("healthcheck"), f"{target} has no health check to wait for"
            elif spec["condition"] == "service_completed_successfully":
                assert all_services[target].get("restart") == "no", f"{target} never completes"
            else:
                pytest.fail(f"{service_name} -> {target}: wait for health or completion, not {spec['condition']}")
        if ("pulse", "ingest") in calls(service):
            clickhouse = [t for t, spec in service["depends_on"].items()
                          if "clickhouse-server" in all_services[t]["image"] and spec["condition"] == "service_healthy"]
            assert clickhouse, f"{service_name} starts before ClickHouse is healthy"
    # Start order exists: no cycles.
    ready: set[str] = set()
    while len(ready) < len(all_services):
        now = {s for s, svc in all_services.items() if s not in ready and set(svc.get("depends_on") or {}) <= ready}
        assert now, f"depends_on cycle among {set(all_services) - ready}"
        ready |= now


@pytest.mark.parametrize("name", COMPOSE)
def test_no_secret_is_hard_coded_outside_the_env_defaults(name):
    compose = load_compose(name)
    defaults = env_defaults(name)
    for path, text in all_strings(compose):
        for password in re.findall(r"://[^:/@\s]+:(\$\{[^}]*\}|[^@\s/]+)@", text):
            assert re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", password), f"{path}: a password in a URL: {password}"
        for variable, operator, _ in VARIABLE.findall(text):
            assert variable in defaults, f"{path}: ${{{variable}}} has no default in {name}'s .env"
            if SECRET_NAME.search(variable):
                assert operator not in (":-", "-"), f"{path}: a default for secret {variable}"
                assert defaults[variable], f"{variable} is empty in .env"
    for service_name, service in compose["services"].items():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), f"{service_name}: write environment as a mapping"
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                assert VARIABLE.fullmatch(str(value)), f"{service_name}: {key} is not from .env"
    for xml in DEPLOY.rglob("*.xml"):
        for element in ET.parse(xml).iter():
            if element.tag in ("password", "secret"):
                assert element.get("from_env") and not (element.text or "").strip(), \
                    f"{xml.relative_to(ROOT)}: <{element.tag}> must come from_env"
    assert not SECRET_NAME.search((DEPLOY / "Dockerfile").read_text())


def test_the_demo_sweep_is_a_valid_sweep_for_the_controller():
    from ingest.sweeps.config import parse_sweep

    config = parse_sweep(yaml.safe_load((DEPLOY / "demo-sweep.yaml").read_text()))
    assert config.method == "grid" and config.metric


def test_demo_sweep_containers_register_the_sweep_once_and_run_its_trials(ingest, tmp_path):
    """The `sweep` and `agent-*` shell commands, as compose runs them, against a real ingest."""

    def shell(service: str, extra: str = "") -> subprocess.CompletedProcess:
        command = services("single")[service]["command"]
        script = (command[2].replace("$$", "$").replace("/var/lib/pulse-demo", str(tmp_path))
                  .replace("/etc/pulse/demo-sweep.yaml", str(DEPLOY / "demo-sweep.yaml")))
        env = {**os.environ, "PULSE_SERVER": ingest.address,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run([*command[:2], script + extra], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    registered = shell("sweep")
    assert registered.returncode == 0, registered.stderr
    sweep_id = (tmp_path / "sweep-id").read_text().strip()
    assert f"pulse agent {sweep_id}" in registered.stdout
    again = shell("sweep")
    assert again.returncode == 0 and "created sweep" not in again.stdout, "a restart registers another sweep"
    trial = shell("agent-1", " --count 1")
    assert trial.returncode == 0, trial.stdout + trial.stderr
    assert "ended finished" in trial.stdout


# -- the image -------------------------------------------------------------------------------


def dockerfile_stages() -> tuple[dict[str, str], list[tuple[str, str, list[str]]]]:
    """Global ARG defaults, and (base image, stage name, instructions) for each stage."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    args, stages = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        verb, _, rest = line.partition(" ")
        if verb.upper() == "FROM":
            image, _, name = rest.partition(" AS ")
            stages.append((re.sub(r"\$\{(\w+)\}", lambda m: args.get(m[1], m[0]), image.strip()), name.strip(), []))
        elif stages:
            stages[-1][2].append(line)
        elif verb.upper() == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
    return args, stages


def test_the_image_is_multi_stage_slim_and_runs_as_a_user():
    _, stages = dockerfile_stages()
    assert len(stages) >= 2
    base, name, final = stages[-1]
    assert base not in {stage[1] for stage in stages[:-1]}, "the final stage must start afresh"
    assert re.fullmatch(r"python:3\.11[\w.-]*-slim[\w.-]*", base), base
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the final stage runs as root"
    final_text = "\n".join(final)
    for installer in ("apt-get install", "apk add", "pip install", "gcc", "g++", "build-essential", "clang"):
        assert installer not in final_text, f"the final stage has `{installer}`"
    copies = [line for line in final if line.upper().startswith("COPY --FROM")]
    assert copies, "the final stage copies the built environment from an earlier stage"


def test_torch_comes_only_with_its_build_argument():
    args, stages = dockerfile_stages()
    instructions = [line for _, _, lines in stages for line in lines]
    assert "ARG WITH_TORCH=0" in instructions
    for line in instructions:
        if re.search(r"\btorch\b", line) and line.startswith("RUN"):
            assert re.search(r'if \[ "\$WITH_TORCH" = "1" \]', line), f"torch outside the build argument: {line}"
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in dependencies if re.match(r"torch\b", d)], "torch is a core dependency"


def test_what_the_image_copies_is_in_the_build_context():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    included = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    _, stages = dockerfile_stages()
    for line in (line for _, _, lines in stages for line in lines):
        if line.upper().startswith("COPY") and "--from" not in line:
            sources = [word for word in line.split()[1:-1] if not word.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file"
                assert source.rstrip("/") in included, f"COPY {source}: excluded by Dockerfile.dockerignore"


def test_health_check_probe_tells_a_serving_ingest_from_a_closed_port(ingest):
    probe = [sys.executable, str(DEPLOY / "healthcheck.py")]
    ok = subprocess.run([*probe, "grpc", ingest.address], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    ok = subprocess.run([*probe, "grpc", ingest.address, TELEMETRY_SERVICE], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run([*probe, "--timeout", "1", "grpc", f"127.0.0.1:{free_port()}"], capture_output=True,
                          text=True, timeout=60)
    assert down.returncode == 1 and "unhealthy" in down.stderr


@pytest.mark.parametrize("status,healthy", [(200, True), (503, False)])
def test_health_check_probe_reads_an_http_status(status, healthy):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/_stcore/health"
        result = subprocess.run([sys.executable, str(DEPLOY / "healthcheck.py"), "http", url],
                                capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert (result.returncode == 0) == healthy, result.stderr


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
        # Tables are created; the only other statements are ALTERs of a node's local table.
        assert formatted.startswith("CREATE TABLE IF NOT EXISTS") or (
            formatted.startswith("ALTER TABLE") and "_local ON CLUSTER" in formatted), name


def expected_sharding_key(table: str, sorting_key: str) -> str:
    keys = [k.strip() for k in sorting_key.split(",")]
    if "project" in keys and "run_id" in keys:
        return "cityHash64(project, run_id)"  # a run's rows stay on one shard
    if "sweep_id" in keys:
        return "cityHash64(project, sweep_id)"  # a sweep's rows (and its trials) stay on one shard
    return {"api_keys": "cityHash64(key_id)"}.get(table, f"<decide how {table} is sharded>")


def test_clustered_schema_is_the_unclustered_schema_sharded_and_replicated(tmp_path):
    config = tmp_path / "cluster.xml"
    config.write_text(TEST_CLUSTER_XML)
    no_on_cluster = re.compile(r"\s+ON CLUSTER\s+'[^']*'")
    spec = {
        "databases": {
            "unclustered": [s for _, _, sql in migration_files("unclustered") for s in _statements(sql)],
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
