"""The dashboard's login under `pulse up --auth`, and where the dashboard listens.

One real stack: `pulse up --auth` (ingest with embedded chDB plus the dashboard), keys made with the
real `pulse keys create`, and runs of two projects written by the real emitter with each project's
own write key. The dashboard holds no key: a browser session sees nothing until it signs in, and
then only what its key reads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from urllib.parse import urlencode

import psutil
import pytest
from dashboard_stack import Stack
from test_dashboard_pages import APP, CHROMIUM, PAGE_CHECK, browser, keep_screenshot  # noqa: F401  (browser: a fixture)

from conftest import ROOT, Ingest, free_port, wait_for
from dashboard.runs_table import link_name

A, B = "alpha-proj", "beta-proj"
A_RUNS, B_RUNS = ("alpha-first", "alpha-second"), ("beta-secret",)
LINK_SQL = "SELECT name FROM runs FINAL ORDER BY name"


class AuthStack:
    """`pulse up --auth` with runs in A and B, and keys of every kind the dashboard tells apart."""

    def __init__(self, root: Path) -> None:
        self.stack = Stack(root / "data", "--auth")
        self.address, self.url = self.stack.address, self.stack.url
        self.admin = (root / "data" / "admin-key").read_text().strip()
        self.keys = {"a-write": self.create("--project", A), "a-read": self.create("--project", A, "--read-only"),
                     "b-write": self.create("--project", B), "all-read": self.create("--read-only"),
                     "empty-read": self.create("--project", "nothing-yet", "--read-only")}
        for project, names, key in ((A, A_RUNS, "a-write"), (B, B_RUNS, "b-write")):
            self.log_runs(project, names, self.keys[key])

    def create(self, *flags: str) -> str:
        done = pulse("keys", "create", *flags, env={"PULSE_SERVER": self.address, "PULSE_API_KEY": self.admin})
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def log_runs(self, project: str, names: tuple[str, ...], key: str) -> None:
        """Each run as a user's script would write it: the real emitter, through the real ingest."""
        script = textwrap.dedent(f"""
            import emitter
            for name in {names!r}:
                run = emitter.init(project={project!r}, name=name, config={{"lr": 0.1}})
                for step in range(20):
                    emitter.log({{"loss": 1.0 / (step + 1)}}, step=step)
                emitter.finish()
        """)
        env = {"PULSE_SERVER": self.address, "PULSE_API_KEY": key, "PULSE_DIR": str(self.stack.log_path.parent)}
        done = subprocess.run([sys.executable, "-c", script], env={**os.environ, **env}, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]


def pulse(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pulse.cli", *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    stack = AuthStack(tmp_path_factory.mktemp("pulse-up-auth"))
    yield stack
    stack.stack.stop()


# -- what a key may do ----------------------------------------------------------------------------------


def test_each_kind_of_key_is_told_apart_by_the_ingest(secured) -> None:
    from dashboard.access import LoginError, auth_required, check_key

    def access(name: str):
        key = secured.keys[name]
        return check_key(secured.address, key)

    assert auth_required(secured.address)
    assert access("a-write").describe().endswith(f"project {A!r} · read-write") and access("a-write").may_write
    assert access("a-read").read_only is True and not access("a-read").may_write
    assert access("all-read").describe().endswith("all projects · read-only")
    admin = check_key(secured.address, secured.admin)
    assert not admin.scoped and admin.may_write
    empty = access("empty-read")  # its project has no runs yet: the ingest names it all the same
    assert empty.scoped and empty.project == "nothing-yet" and not empty.may_write
    with pytest.raises(LoginError, match="not accepted: the API key is not valid"):
        check_key(secured.address, secured.keys["a-read"][:-4] + "XXXX")
    with pytest.raises(LoginError, match="Enter an API key"):
        check_key(secured.address, "  ")


# -- sessions, without a browser (AppTest shares one process, so one cache, between sessions) ------------


def session(monkeypatch, secured, key: str | None, view: str = "runs", **params: str):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("PULSE_SERVER", secured.address)
    monkeypatch.setenv("PULSE_API_KEY", secured.admin)  # never used: the dashboard reads with its user's key
    monkeypatch.delenv("PULSE_CLICKHOUSE_URL", raising=False)
    st.cache_resource.clear()
    at = AppTest.from_file(str(APP), default_timeout=60)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    if key is not None:
        at.text_input[0].input(key)
        at.button[0].click().run()
    if view != "runs":
        at.switch_page(f"views/{view}.py").run()
    assert not at.exception, at.exception
    return at


def test_without_a_key_no_page_reads_anything(monkeypatch, secured) -> None:
    at = session(monkeypatch, secured, None, project=B)
    assert [h.value for h in at.header] == ["Pulse · sign in"]
    assert not at.dataframe and not at.sidebar.selectbox and not at.error
    assert at.text_input[0].proto.type == at.text_input[0].proto.PASSWORD


def test_a_scoped_key_lists_its_own_project_only(monkeypatch, secured):
    wide = session(monkeypatch, secured, secured.keys["all-read"])
    assert wide.sidebar.selectbox[0].options == [A, B]
    scoped = session(monkeypatch, secured, secured.keys["a-read"], project=B)
    assert scoped.sidebar.selectbox[0].options == [A] and scoped.sidebar.selectbox[0].value == A
    assert f"reads '{A}' only" in scoped.warning[0].value.replace("\\", "")
    assert sorted(scoped.dataframe[0].value["name"].map(link_name)) == sorted(A_RUNS)  # names link to run pages
    assert "key" in scoped.sidebar.caption[0].value and "read\\-only" in scoped.sidebar.caption[0].value
    assert "pk_" not in str(dict(scoped.query_params))  # the key never goes into the URL


def test_a_wrong_key_is_refused_with_a_message_and_log_out_forgets_the_key(monkeypatch, secured) -> None:
    at = session(monkeypatch, secured, "pk_000000000000_not-a-real-secret")
    assert "This key was not accepted" in at.error[0].value and not at.sidebar.selectbox
    at.text_input[0].input(secured.keys["a-read"])
    at.button[0].click().run()
    assert at.sidebar.selectbox[0].value == A
    at.sidebar.button[0].click().run()  # Log out
    assert [h.value for h in at.header] == ["Pulse · sign in"] and "pulse:key" not in at.session_state


def test_cached_answers_are_never_served_to_another_key(monkeypatch, secured) -> None:
    """AppTest sessions share the process, so st.cache_data: the same read, in the same refresh
    period, first with the all-projects key and then with A's, must be asked again with A's."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    def page(key: str) -> None:
        import streamlit as st

        from dashboard import state
        from dashboard.access import check_key
        from dashboard.data import Source

        reader = Source(api_key=key)
        state.sign_in(key, check_key(reader.server, key), reader)
        st.write(",".join(state.fetch("projects")))
        st.write(",".join(state.fetch("sql", "SELECT name FROM runs FINAL ORDER BY name").column("name").to_pylist()))

    monkeypatch.setenv("PULSE_SERVER", secured.address)
    st.cache_data.clear()
    answers = {}
    for name in ("all-read", "a-read", "all-read"):
        at = AppTest.from_function(page, args=(secured.keys[name],), default_timeout=60).run()
        answers.setdefault(name, []).append([m.value for m in at.markdown])
    assert answers["all-read"][0] == answers["all-read"][1] == [f"{A},{B}", ",".join(sorted(A_RUNS + B_RUNS))]
    assert answers["a-read"] == [[A, ",".join(sorted(A_RUNS))]]


def test_a_key_revoked_mid_session_signs_the_session_out(monkeypatch, secured) -> None:
    key = secured.create("--project", A, "--read-only", "--note", "revoked mid-session")
    at = session(monkeypatch, secured, key)
    assert at.sidebar.selectbox[0].value == A
    env = {"PULSE_SERVER": secured.address, "PULSE_API_KEY": secured.admin}
    assert pulse("keys", "revoke", key.removeprefix("pk_").partition("_")[0], env=env).returncode == 0

    def signed_out() -> bool:  # the ingest notices within its key cache's few seconds; Refresh reads again
        at.sidebar.button[1].click().run()  # [0] is Log out
        return [h.value for h in at.header] == ["Pulse · sign in"]

    wait_for(signed_out, timeout=30, step=1, what="the revoked key's session to be signed out")
    assert "no longer accepts your key" in at.warning[0].value and "was revoked" in at.warning[0].value


def test_may_write_follows_the_key(monkeypatch, secured) -> None:
    from streamlit.testing.v1 import AppTest

    def page(key: str) -> None:
        import streamlit as st

        from dashboard import state
        from dashboard.access import check_key
        from dashboard.data import Source

        reader = Source(api_key=key)
        state.sign_in(key, check_key(reader.server, key), reader)
        st.write(f"{state.may_write()},{state.may_write('alpha-proj')},{state.may_write('beta-proj')}")

    monkeypatch.setenv("PULSE_SERVER", secured.address)
    for name, expected in (("a-write", "True,True,False"), ("a-read", "False,False,False"),
                           ("all-read", "False,False,False")):
        at = AppTest.from_function(page, args=(secured.keys[name],), default_timeout=60).run()
        assert at.markdown[0].value == expected, name


# -- the real pages in Chromium --------------------------------------------------------------------------


def page_check(url: str, out: Path, *args: str, timeout: int = 90) -> dict:
    import json

    result = subprocess.run([sys.executable, str(PAGE_CHECK), url, "--out", str(out), "--timeout", str(timeout),
                             "--text-out", str(out.with_suffix(".txt")), *args],
                            capture_output=True, text=True, timeout=timeout + 60)
    keep_screenshot(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["exceptions"] == 0, report["exception_texts"]
    report["text"] = out.with_suffix(".txt").read_text()
    return report


@pytest.mark.parametrize("path", [f"charts?project={B}", f"runs?project={A}", f"sql?{urlencode({'sql': LINK_SQL})}"])
@pytest.mark.usefixtures("browser")
def test_without_a_key_the_browser_shows_the_login_and_nothing_of_any_project(secured, tmp_path,
                                                                              path) -> None:
    report = page_check(f"{secured.url}/{path}", tmp_path / f"auth-nokey-{path.partition('?')[0]}.png",
                        "--wait-text", "sign in", "--strict")
    assert report["charts"] == 0 and report["dataframes"] == 0
    for name in (A, B, *A_RUNS, *B_RUNS):
        assert name not in report["text"]
    assert [i["label"] for i in report["inputs"]] == ["API key"]


@pytest.mark.usefixtures("browser")
def test_a_key_of_project_a_shows_a_and_never_b(secured, tmp_path) -> None:
    """The link names project B; the A key's session shows A's runs (charts and run picker) instead."""
    report = page_check(f"{secured.url}/charts?project={B}", tmp_path / "auth-a-charts.png",
                        "--fill", f"API key={secured.keys['a-read']}", "--wait-text", "Signed in",
                        "--wait-text", A_RUNS[0], "--wait-text", A_RUNS[1])
    assert report["charts"] >= 1
    assert f"project '{A}' · read-only" in report["text"] and f"reads '{A}' only, not '{B}'" in report["text"]
    for name in B_RUNS:
        assert name not in report["text"]
    assert {"label": "Project", "type": "text", "value": A} in report["inputs"]
    assert "pk_" not in report["text"]


@pytest.mark.usefixtures("browser")
def test_a_wrong_key_shows_an_error(secured, tmp_path) -> None:
    report = page_check(f"{secured.url}/runs", tmp_path / "auth-wrong-key.png",
                        "--fill", "API key=pk_000000000000_not-a-real-secret", "--wait-text", "not accepted")
    assert any("the API key is not valid" in alert for alert in report["error_alerts"])
    assert report["dataframes"] == 0


@pytest.mark.usefixtures("browser")
def test_sql_from_a_link_runs_only_when_run_is_pressed(secured, tmp_path) -> None:
    url = f"{secured.url}/sql?{urlencode({'sql': LINK_SQL})}"
    key = f"API key={secured.keys['a-read']}"
    waiting = page_check(url, tmp_path / "auth-sql-waiting.png", "--fill", key, "--wait-text", "press Run")
    assert waiting["dataframes"] == 0 and "rows ·" not in waiting["text"]
    assert {"label": "Read-only SQL (one statement)", "type": "textarea", "value": LINK_SQL} in waiting["inputs"]
    ran = page_check(url, tmp_path / "auth-sql-ran.png", "--fill", key, "--click", "Run",
                     "--wait-text", f"{len(A_RUNS)} rows · 1 columns")  # A's runs only, never B's
    assert ran["dataframes"] == 1


@pytest.mark.usefixtures("browser")
def test_log_out_returns_to_the_login(secured, tmp_path) -> None:
    report = page_check(f"{secured.url}/runs?project={A}", tmp_path / "auth-logged-out.png",
                        "--fill", f"API key={secured.keys['a-read']}", "--click", "Log out",
                        "--wait-text", "sign in")
    assert report["dataframes"] == 0 and A_RUNS[0] not in report["text"]


def test_the_all_projects_key_older_dashboards_held_is_revoked_at_the_next_start(tmp_path) -> None:
    up = [sys.executable, "-m", "pulse.cli", "up", "--no-ui"]
    first = Ingest(tmp_path / "data", "--auth", command=up).start()
    try:
        env = {"PULSE_SERVER": first.address, "PULSE_API_KEY": (tmp_path / "data" / "admin-key").read_text().strip()}
        old = pulse("keys", "create", "--read-only", "--note", "dashboard", env=env).stdout.strip().splitlines()[-1]
        (tmp_path / "data" / "dashboard-key").write_text(old + "\n")
    finally:
        first.stop()
    again = Ingest(tmp_path / "data", "--auth", command=up, port=first.port).start()
    try:
        wait_for(lambda: "revoked the dashboard's own key" in again.log_path.read_text(), timeout=60,
                 what="the old dashboard key to be revoked")
        assert not (tmp_path / "data" / "dashboard-key").exists()
        refused = pulse("sql", "SELECT 1", env={**env, "PULSE_API_KEY": old})
        assert refused.returncode != 0 and "was revoked" in refused.stderr
    finally:
        again.stop()


# -- where it listens ---------------------------------------------------------------------------------------


def test_the_dashboard_listens_on_loopback_by_default(secured) -> None:
    port = int(secured.url.rsplit(":", 1)[1])
    listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port}
    assert listening == {"127.0.0.1"}


def test_pulse_up_beyond_loopback_without_auth_is_refused_or_warned_loudly(tmp_path) -> None:
    common = ["up", "--host", "0.0.0.0", "--data", str(tmp_path / "data"), "--port", str(free_port()), "--no-ui"]
    refused = pulse(*common, env={})
    assert refused.returncode == 2 and "refusing to listen on 0.0.0.0 without --auth" in refused.stderr
    warned = _first_lines([*common, "--insecure"], until="WARNING: add --auth")
    assert "WARNING: the ingest listens on 0.0.0.0 without --auth" in warned
    assert "reads (and, through the ingest, writes) EVERY project" in warned


def test_pulse_dashboard_beyond_loopback_warns_unless_its_ingest_asks_for_keys(secured) -> None:
    nowhere = _first_lines(["dashboard", "--host", "0.0.0.0", "--port", str(free_port()),
                            "--server", f"127.0.0.1:{free_port()}"], until="pulse dashboard: http")
    assert "WARNING: the dashboard listens on 0.0.0.0, and whether the ingest requires keys is unknown" in nowhere
    direct = _first_lines(["dashboard", "--host", "0.0.0.0", "--port", str(free_port()),
                           "--clickhouse", "http://reader:secret@127.0.0.1:9/default"], until="pulse dashboard: http")
    assert "WARNING: the dashboard listens on 0.0.0.0 and reads ClickHouse directly, without a login" in direct
    assert "secret" not in direct
    keyed = _first_lines(["dashboard", "--host", "0.0.0.0", "--port", str(free_port()), "--server", secured.address],
                         until="pulse dashboard: http")
    assert "WARNING" not in keyed


def _first_lines(args: list[str], until: str) -> str:
    """`pulse ARGS` until a line holding `until` (stderr and stdout together), then stopped with its children."""
    process = subprocess.Popen([sys.executable, "-m", "pulse.cli", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=ROOT, start_new_session=True,
                               env={k: v for k, v in os.environ.items() if k != "PULSE_CLICKHOUSE_URL"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: [lines.append(line) for line in process.stdout], daemon=True)
    reader.start()

    def seen() -> bool:
        if process.poll() is not None and not reader.is_alive():
            raise AssertionError(f"pulse exited {process.returncode}: {''.join(lines)[-3000:]}")
        return any(until in line for line in list(lines))

    try:
        wait_for(seen, timeout=90, what=f"{until!r} from pulse {args[0]}")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    return "".join(lines)
