"""What every page shares: the store, cached reads, and the view's state in the URL.

A page's state lives in its query parameters (`?project=P&runs=A,B`, `&run=ID`, `&sweep=ID`), so
a link reproduces the view. Streamlit drops query parameters when the navigation menu switches
pages, so the last project and runs are also kept in the session and put back into the URL.

Reads go through `read(...)`, which caches each answer with `st.cache_data`, keyed by the method,
its arguments, the reader's identity and a refresh token: the token moves every few seconds for live
views (and when the user presses Refresh), so many browser sessions watching the same runs with the
same key cost one query per period, and one key's answers are never served to another key.

With auth on, a session reads with its user's API key (`sign_in`, kept in `st.session_state`, never in
the URL): its own `Source`, its own cache identity (the key's sha256), and its `Access` (scope and
rights). Without auth every session shares one keyless `Source`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.access import Access
from dashboard.data import DataError, RunFilter, RunSort, Source
from dashboard.edits import Editor

LIVE_S = 2  # refresh period of pages showing running runs
IDLE_S = 30  # how long anything else may be cached
PICKER_RUNS = 200  # recent runs offered by run pickers; the Runs page finds the others
# What this browser session keeps about its user (st.session_state, on the server; never the URL).
SESSION_KEY = "pulse:key"  # the API key itself
SESSION_SOURCE = "pulse:source"  # a Source reading with it
SESSION_IDENTITY = "pulse:identity"  # its sha256: what cached answers are keyed by
SESSION_ACCESS = "pulse:access"  # its scope and rights (dashboard.access.Access)
AUTH_REQUIRED = "pulse:auth-required"  # whether the ingest asks for keys (False, True; absent: not asked yet)
SIGNED_OUT_REASON = "pulse:signed-out"  # why the session was signed out, for the login form to say


@st.cache_resource
def shared_source() -> Source:
    """The keyless Source of sessions that have not signed in (all of them when auth is off)."""
    return Source()


def source() -> Source:
    """This session's Source: its user's key once signed in, else the shared keyless one."""
    return st.session_state.get(SESSION_SOURCE) or shared_source()


@st.cache_data(ttl=600, max_entries=2000, show_spinner=False)
def _cached(address: str, identity: str, method: str, args: tuple, token: tuple, _source: Source) -> Any:
    return getattr(_source, method)(*args)


def fetch(method: str, *args: Any, live: bool = False) -> Any:
    """`source().<method>(*args)`, cached until the refresh token moves (every LIVE_S seconds for live
    views, IDLE_S otherwise, and whenever the user presses Refresh)."""
    period = LIVE_S if live else IDLE_S
    token = (st.session_state.get("refresh", 0), int(time.time() // period))
    reader = source()
    return _cached(reader.address, st.session_state.get(SESSION_IDENTITY, ""), method, args, token, _source=reader)


def read(method: str, *args: Any, live: bool = False) -> Any:
    """As `fetch`, but a DataError stops the page with the store's message; a key the ingest no
    longer accepts (revoked) signs the session out."""
    try:
        return fetch(method, *args, live=live)
    except DataError as exc:
        if access() is not None and str(exc).startswith("UNAUTHENTICATED"):
            sign_out(f"The ingest no longer accepts your key: {exc}")
            st.rerun()
        st.error(f"The store could not answer: {exc}")
        st.stop()


# -- the signed-in user ------------------------------------------------------------------------------


def sign_in(key: str, granted: Access, reader: Source) -> None:
    """From now on this session reads through `reader`, which reads with `key` (checked by the
    caller: `access.check_key`)."""
    st.session_state[SESSION_KEY] = key
    st.session_state[SESSION_SOURCE] = reader
    st.session_state[SESSION_IDENTITY] = hashlib.sha256(key.encode()).hexdigest()
    st.session_state[SESSION_ACCESS] = granted


def sign_out(reason: str = "") -> None:
    """Forget the key and everything this session looked at (its projects, runs, SQL)."""
    own = st.session_state.get(SESSION_SOURCE)
    if own is not None:
        own.close()
    st.session_state.clear()
    if reason:
        st.session_state[SIGNED_OUT_REASON] = reason


def session_key() -> str:
    """The signed-in user's API key ('' before signing in, and without auth)."""
    return st.session_state.get(SESSION_KEY, "")


def access() -> Access | None:
    """The signed-in key's scope and rights; None without a key (auth off, or not signed in yet)."""
    return st.session_state.get(SESSION_ACCESS)


def may_write(project: str | None = None) -> bool:
    """Whether this session may edit data (of `project`, when given): with auth on, only with a key
    that is not read-only (and is for that project, when scoped); with auth off, whoever reaches the
    ingest may write; reading ClickHouse directly never may (it reads as a read-only user)."""
    granted = access()
    if granted is None:
        return source().server is not None and st.session_state.get(AUTH_REQUIRED) is False
    if project is not None and granted.scoped and granted.project != project:
        return False
    return granted.may_write


def editor() -> Editor:
    """Writes (run edits, stopping sweeps) through the ingest with this session's key; check
    `may_write` first."""
    return Editor(source().server or "", session_key())


def reread() -> None:
    """After a write: the next reads go to the store, not the cache."""
    st.session_state["refresh"] = st.session_state.get("refresh", 0) + 1


def refresh_button() -> None:
    if st.sidebar.button("Refresh", icon=":material/refresh:", help="Read everything again"):
        st.session_state["refresh"] = st.session_state.get("refresh", 0) + 1


# -- the URL --------------------------------------------------------------------------------------


def param(name: str) -> str:
    return st.query_params.get(name, "")


def set_params(**values: str | Sequence[str] | None) -> None:
    """Write values into the URL (lists comma-joined); empty values remove the parameter."""
    for name, value in values.items():
        if value is not None and not isinstance(value, str):
            value = ",".join(value)
        if value:
            if st.query_params.get(name) != value:
                st.query_params[name] = value
        elif name in st.query_params:
            del st.query_params[name]


def url_runs() -> list[str]:
    """Run ids named by `?runs=A,B` or `?run=ID`."""
    runs = [r for r in param("runs").split(",") if r]
    single = param("run")
    if single and single not in runs:
        runs.insert(0, single)
    return runs


# -- project and runs -------------------------------------------------------------------------------


def project_picker() -> str | None:
    """The project in the URL (or the last one this session saw), chosen in the sidebar."""
    wanted = param("project") or st.session_state.get("project", "")
    projects = read("projects")
    granted = access()
    if granted is not None and granted.scoped:
        # A project's key reads that project alone: offer nothing else, even when the link names another.
        projects = [granted.project] if granted.project else []
        if wanted and wanted not in projects:
            st.warning(f"Your key reads {md(repr(granted.project)) if granted.project else 'one project'} only, "
                       f"not {md(repr(wanted))}.")
            wanted = ""
    if not projects and not wanted:
        st.info("No runs yet. Log one with `emitter.init(project=...)` and `emitter.log({...})`.")
        return None
    options = projects if not wanted or wanted in projects else [wanted, *projects]
    project = st.sidebar.selectbox("Project", options, index=options.index(wanted) if wanted in options else 0)
    if project != st.session_state.get("project"):
        if st.session_state.get("project"):  # another project: its runs are not this one's
            st.session_state.pop("runs", None)
            if param("project") != project:
                set_params(runs=None, run=None, sweep=None)
        st.session_state["project"] = project
    set_params(project=project)
    return project


def run_picker(project: str, multiple: bool = True, default_count: int = 5) -> list[str]:
    """Runs chosen from the URL's, then this session's, then the newest; kept in the URL."""
    wanted = url_runs() or st.session_state.get("runs", [])
    search = st.sidebar.text_input("Find runs", placeholder="name, id, tag…",
                                   help="Narrows the run list below; the Runs page filters by config too")
    recent = read("runs_page", project, RunFilter(text=search), RunSort(), PICKER_RUNS)
    known = read("runs", project, tuple(wanted)) if wanted else recent.slice(0, 0)
    table = pd.concat([known.to_pandas(), recent.to_pandas()]).drop_duplicates("run_id")
    names = labels(table)
    options = list(names)
    chosen = [run_id for run_id in wanted if run_id in names]
    if not chosen and not wanted:
        chosen = options[:default_count] if multiple else options[:1]
    if multiple:
        chosen = st.sidebar.multiselect("Runs", options, default=chosen, format_func=names.get)
    else:
        pick = st.sidebar.selectbox("Run", options, index=options.index(chosen[0]) if chosen else 0,
                                    format_func=names.get) if options else None
        chosen = [pick] if pick else []
    st.session_state["runs"] = chosen
    if multiple:
        set_params(runs=chosen, run=None)
    else:
        set_params(run=chosen[0] if chosen else None, runs=None)
    if wanted and not chosen:
        st.warning("The runs in the link are not in this project.")
    return chosen


def run_names(runs: pd.DataFrame) -> dict[str, str]:
    """run_id -> the name to show; the id is added where two runs share a name."""
    if runs.empty:
        return {}
    names = runs["name"].where(runs["name"] != "", runs["run_id"])
    counts = names.value_counts()
    return {run_id: name if counts[name] == 1 else f"{name} ({run_id})"
            for run_id, name in zip(runs["run_id"], names)}


def labels(runs: pd.DataFrame) -> dict[str, str]:
    """run_id -> its name, with its state unless it finished (`beta · crashed`), for pickers."""
    states = dict(zip(runs["run_id"], runs["state"])) if not runs.empty else {}
    return {run_id: name if states[run_id] == "finished" else f"{name} · {states[run_id]}"
            for run_id, name in run_names(runs).items()}


def any_running(runs: pd.DataFrame, run_ids: Iterable[str] | None = None) -> bool:
    if runs.empty:
        return False
    rows = runs if run_ids is None else runs[runs["run_id"].isin(list(run_ids))]
    return bool(rows["state"].eq("running").any())


def page_link(page: str, label: str, icon: str | None = None, **params: str | Sequence[str] | None) -> None:
    """A link to another page that carries the project and the given runs or sweep."""
    query = {"project": st.session_state.get("project", "")}
    for name, value in params.items():
        if value:
            query[name] = value if isinstance(value, str) else ",".join(value)
    st.page_link(page, label=label, icon=icon, query_params=query)


# -- widgets whose value lives in the URL --------------------------------------------------------------


def url_key(name: str, default: Any, options: Sequence[Any] | None = None) -> str:
    """The session key of a widget that mirrors `?name=`: (re)seeded from the URL whenever the URL
    changed behind the page's back (a link, the first load); pair it with `to_url(name, value)`."""
    key, seen = f"url:{name}", f"url-seen:{name}"
    raw = param(name)
    if st.session_state.get(seen) != raw or key not in st.session_state:
        st.session_state[key] = _parse(raw, default)
        st.session_state[seen] = raw
    value = st.session_state[key]
    if options is not None:
        if isinstance(default, list):
            st.session_state[key] = [v for v in value if v in options]
        elif value not in options:
            st.session_state[key] = default if default in options else (options[0] if options else None)
    return key


def to_url(name: str, value: Any, default: Any) -> None:
    raw = "" if value == default else _dump(value)
    set_params(**{name: raw})
    st.session_state[f"url-seen:{name}"] = raw


def _parse(raw: str, default: Any) -> Any:
    if not raw:
        return default
    if isinstance(default, bool):
        return raw in ("1", "true", "yes")
    if isinstance(default, list):
        return [part for part in raw.split(",") if part]
    if isinstance(default, (int, float)):
        try:
            return type(default)(raw)
        except ValueError:
            return default
    return raw


def _dump(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~:])")


def md(text: str) -> str:
    """User text (run names, keys) made safe to put inside Streamlit markdown."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)
