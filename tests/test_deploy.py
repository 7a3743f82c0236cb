"""The deployment: compose stacks and the image (the cluster: test_deploy_cluster.py).

No Docker engine runs on these machines, so these tests check everything short of
starting containers: the compose files parse and hang together, every container runs a
real Pulse command, health checks gate the start order, no secret sits outside the
`.env` defaults, and the Dockerfile keeps its promises.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from conftest import free_port
from ingest.server import SERVICE as TELEMETRY_SERVICE

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


GRAFANA = DEPLOY / "grafana"


def test_grafana_reads_pulse_through_the_ingests_sql_port():
    """The provisioned data source is the ingest's ClickHouse HTTP interface, on the port the ingest serves it."""
    compose = services("single")
    grafana, ingest = compose["grafana"], compose["ingest"]
    command = ingest["command"]
    sql_port = int(command[command.index("--sql-port") + 1])
    [source] = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "pulse.yaml").read_text())["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert (source["jsonData"]["host"], source["jsonData"]["port"], source["jsonData"]["protocol"]) == \
        ("ingest", sql_port, "http")
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    assert grafana["depends_on"]["ingest"] == {"condition": "service_healthy"}
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana["volumes"]}
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "pulse.yaml").read_text())["providers"][0]
    assert (DEPLOY / mounts[provider["options"]["path"]] / "pulse.json").exists()
    assert (DEPLOY / mounts["/etc/grafana/provisioning/datasources"] / "pulse.yaml").exists()


def test_the_grafana_dashboard_charts_losses_and_system_metrics_from_the_data_source():
    dashboard = json.loads((GRAFANA / "dashboards" / "pulse.json").read_text())
    targets = [target for panel in dashboard["panels"] for target in panel["targets"]]
    assert {target["datasource"]["uid"] for target in targets} == {"pulse"}
    sql = [target["rawSql"] for target in targets]
    assert any("FROM metrics" in s and "loss" in s for s in sql) and any("FROM system_metrics" in s for s in sql)
