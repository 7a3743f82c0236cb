"""/run?project=P&run=ID: one run — its state (and why it failed), where and how it ran, its config
and summary, charts, system summary, console output, alerts and artifacts; name, tags and notes
editable, and the run deletable, with a key that may write the project."""

from __future__ import annotations

import html
import json
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import panels
from dashboard.data import DataError
from dashboard.edits import EditError
from dashboard.panels import PanelOptions, split_watch
from dashboard.runs_table import STATE_COLORS, format_duration
from dashboard.state import (
    LIVE_S,
    editor,
    fetch,
    may_write,
    md,
    page_link,
    param,
    project_picker,
    read,
    refresh_button,
    reread,
    run_picker,
)
from dashboard.system_keys import title as system_title

CONSOLE_PAGE = 500
ENDED_BADLY = ("failed", "crashed", "killed")


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    run_id = param("run") or next(iter(run_picker(project, multiple=False)), "")
    if not run_id:
        st.header("Run", anchor=False)
        st.info("Pick a run in the sidebar, or open one from the Runs page.")
        return
    detail = read("run_detail", project, run_id).to_pylist()
    if not detail:
        st.header("Run", anchor=False)
        st.warning(f"Project {md(repr(project))} has no run {md(repr(run_id))}.")
        return
    live = detail[0]["state"] == "running"
    st.fragment(run_every=LIVE_S * 2 if live else None)(_page)(project, run_id, live)


def _page(project: str, run_id: str, live: bool) -> None:
    run = read("run_detail", project, run_id, live=live).to_pylist()[0]
    metadata = _json(run.get("metadata"))
    _header(project, run, metadata)
    if run["state"] in ENDED_BADLY:
        _failure(project, run)
    if may_write(project):
        _edit(project, run)
    _where(run, metadata)
    config_col, summary_col = st.columns(2)
    with config_col:
        _table("Config", _json(run["config"]), "config")
    with summary_col:
        _table("Summary", _json(run["summary"]), "summary")
    _charts(project, run, live)
    _system(project, run_id, live)
    _console(project, run_id, live)
    _alerts(project, run_id, live)
    _artifacts(project, run_id)


def _header(project: str, run: dict, metadata: dict) -> None:
    name = run["name"] or run["run_id"]
    st.header(name, anchor=False)
    color = STATE_COLORS.get(run["state"], "#777")
    facts = [f'<span class="pulse-state" style="background:{color}">{_escape(run["state"])}</span>',
             f"<span><b>{format_duration(run['duration_s'])}</b></span>",
             f"<span>started {pd.Timestamp(run['created_at']).strftime('%Y-%m-%d %H:%M:%S')} UTC</span>",
             f"<span>id <b>{_escape(run['run_id'])}</b></span>"]
    for label, value in (("host", run["host"] or metadata.get("host")), ("group", run["group"]),
                         ("job", run["job_type"]), ("sweep", run["sweep_id"])):
        if value:
            facts.append(f"<span>{label} <b>{_escape(str(value))}</b></span>")
    if run["tags"]:
        facts.append("<span>tags " + " ".join(f"<b>#{_escape(t)}</b>" for t in run["tags"]) + "</span>")
    st.html(f'<div class="pulse-meta">{"".join(facts)}</div>')
    if run["deleted"]:
        st.warning("This run is deleted: the dashboard hides it everywhere but here.", icon=":material/delete:")
    if run["notes"]:
        st.markdown(f"> {md(run['notes'])}".replace("\n", "\n> "))
    links = st.columns(4)
    with links[0]:
        page_link("views/charts.py", "Compare on Charts", ":material/show_chart:", run=run["run_id"])
    with links[1]:
        page_link("views/system.py", "System", ":material/memory:", run=run["run_id"])
    with links[2]:
        page_link("views/model.py", "Model", ":material/hub:", run=run["run_id"])
    with links[3]:
        page_link("views/media.py", "Media", ":material/image:", run=run["run_id"])


def _failure(project: str, run: dict) -> None:
    reason = run["error"] or "no reason recorded"
    code = f" (exit code {run['exit_code']})" if run["exit_code"] else ""
    text = f"**{run['state'].capitalize()}**{code}: {md(reason)}"
    if run["state"] == "killed":
        st.warning(text, icon=":material/stop_circle:")
    else:
        st.error(text, icon=":material/error:")
    lines = read("traceback", project, run["run_id"])
    if lines:
        st.caption("The traceback, from the run's stderr")
        st.code("\n".join(lines), language="python", wrap_lines=True)


def _edit(project: str, run: dict) -> None:
    with st.expander("Edit this run", icon=":material/edit:"):
        known = list(read("tags", project).to_pandas()["tag"])
        with st.form(f"edit:{run['run_id']}", border=False):
            name = st.text_input("Name", value=run["name"])
            tags = st.multiselect("Tags", list(dict.fromkeys([*run["tags"], *known])), default=list(run["tags"]),
                                  accept_new_options=True)
            notes = st.text_area("Notes", value=run["notes"], height=100)
            saved = st.form_submit_button("Save", icon=":material/save:")
        if saved:
            _apply(lambda: editor().update(project, run["run_id"], name=name, notes=notes, tags=tags), "Saved.")
        if run["deleted"]:
            if st.button("Restore this run", icon=":material/restore_from_trash:"):
                _apply(lambda: editor().restore(project, run["run_id"]), "Restored.")
        elif st.button("Delete this run", icon=":material/delete:",
                       help="Hidden from every page, kept in the store; restore it from the Runs page's deleted runs"):
            _apply(lambda: editor().delete(project, run["run_id"]), "Deleted (restore it here or on the Runs page).")


def _apply(change, done: str) -> None:
    try:
        change()
    except EditError as exc:
        st.error(f"The ingest refused the change: {md(str(exc))}")
        return
    reread()
    st.toast(done)
    st.rerun()


def _where(run: dict, metadata: dict) -> None:
    """How and where the run ran: command, git, Python and packages (what init() captured)."""
    rows = []
    if metadata.get("command"):
        rows.append(("command", " ".join(str(part) for part in [metadata.get("executable", "python"),
                                                                 *metadata["command"]])))
    git = metadata.get("git") if isinstance(metadata.get("git"), dict) else {}
    if git.get("commit"):
        dirty = {True: " (dirty: uncommitted changes)", False: " (clean)"}.get(git.get("dirty"), "")
        rows.append(("git", f"{git['commit'][:12]}{dirty}" + (f" on {git['branch']}" if git.get("branch") else "")))
        if git.get("remote"):
            rows.append(("git remote", git["remote"]))
    for key in ("cwd", "python", "os", "user", "pid"):
        if metadata.get(key):
            rows.append((key, str(metadata[key])))
    for package, version in sorted((metadata.get("packages") or {}).items()):
        rows.append((package, str(version)))
    st.subheader("Environment", anchor=False, divider="gray")
    if not rows:
        st.caption("This run's emitter did not say how it ran (an older emitter, or a run made by `pulse sync`).")
        return
    st.dataframe(pd.DataFrame(rows, columns=["", "value"]), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(rows), 360))


def _table(title: str, values: dict, key: str) -> None:
    st.subheader(title, anchor=False, divider="gray")
    flat = _flatten(values)
    if not flat:
        st.caption(f"No {title.lower()}.")
        return
    search = st.text_input(f"Search the {title.lower()}", key=f"run:{key}:search", placeholder="key or value")
    table = pd.DataFrame({"key": list(flat), "value": [_text(v) for v in flat.values()]})
    if search:
        hit = table["key"].str.contains(search, case=False, regex=False) | \
            table["value"].str.contains(search, case=False, regex=False)
        table = table[hit]
    st.caption(f"{len(table):,} of {len(flat):,} entries")
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 420),
                 column_config={"key": st.column_config.TextColumn("key", width="medium")})


def _charts(project: str, run: dict, live: bool) -> None:
    st.subheader("Charts", anchor=False, divider="gray")
    keys = read("metric_keys", project, (run["run_id"],), live=live)
    if not keys:
        st.caption("No metrics logged.")
        return
    runs = read("runs", project, (run["run_id"],), live=live).to_pandas()
    definitions = _json(run.get("metric_defs"))
    user_keys, watch_keys = split_watch(keys)
    options = PanelOptions(columns=2)
    if user_keys:
        panels.draw(project, [run["run_id"]], runs, user_keys, options, definitions, key_prefix="run:user", live=live)
    if watch_keys and st.toggle(f"Show the {len(watch_keys)} gradient and weight norms watch() logged",
                                key="run:show-watch"):
        panels.draw(project, [run["run_id"]], runs, watch_keys, options, definitions, key_prefix="run:watch",
                    live=live)


def _system(project: str, run_id: str, live: bool) -> None:
    summary = read("system_summary", project, run_id, live=live).to_pandas()
    st.subheader("System", anchor=False, divider="gray")
    if summary.empty:
        st.caption("No system samples (PULSE_SYSTEM_INTERVAL=0, or the run was too short).")
        return
    table = pd.DataFrame({"metric": [system_title(k) for k in summary["key"]], "device": summary["device"],
                          "mean": summary["mean"], "max": summary["max"], "last": summary["last"],
                          "samples": summary["samples"]})
    st.dataframe(table, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 420),
                 column_config={c: st.column_config.NumberColumn(c, format="%.4g") for c in ("mean", "max", "last")})


def _console(project: str, run_id: str, live: bool) -> None:
    counts = read("console_lines", project, run_id, live=live)
    st.subheader("Console output", anchor=False, divider="gray")
    if not counts["lines"]:
        st.caption("No console output (the emitter captures stdout and stderr unless PULSE_CONSOLE=off).")
        return
    pages_key = f"run:{run_id}:console-pages"
    pages = st.session_state.get(pages_key, 1)
    lines = read("console", project, run_id, CONSOLE_PAGE * pages, 0, live=live).to_pandas()
    stderr_only = st.toggle(f"stderr only ({counts['stderr']:,} lines)", key=f"run:{run_id}:stderr")
    if stderr_only:
        lines = lines[lines["stream"] == "stderr"]
    st.caption(f"The last {len(lines):,} of {counts['lines']:,} lines" if counts["lines"] > len(lines)
               else f"{counts['lines']:,} lines")
    text = "\n".join(lines["text"])
    with st.container(height=420):
        st.code(text or " ", language=None, wrap_lines=True)
    if counts["lines"] > CONSOLE_PAGE * pages and st.button("Show earlier lines", key=f"run:{run_id}:earlier"):
        st.session_state[pages_key] = pages + 1
        st.rerun()


def _alerts(project: str, run_id: str, live: bool) -> None:
    alerts = read("alerts", project, (run_id,), live=live).to_pandas()
    if alerts.empty:
        return
    st.subheader(f"Alerts ({len(alerts)})", anchor=False, divider="gray")
    st.dataframe(alerts[["ts", "level", "title", "text"]], hide_index=True, width="stretch",
                 column_config={"ts": st.column_config.DatetimeColumn("time (UTC)", format="YYYY-MM-DD HH:mm:ss")})


def _artifacts(project: str, run_id: str) -> None:
    """The artifacts it logged and used, where the store has artifact tables (otherwise nothing)."""
    try:
        table = fetch("run_artifacts", project, run_id)
    except DataError:  # a store whose artifact tables this key may not read, or an older schema
        return
    if table is None:
        return
    st.subheader("Artifacts", anchor=False, divider="gray")
    rows = table.to_pandas()
    if rows.empty:
        st.caption("This run logged and used no artifacts.")
        return
    rows["artifact"] = rows["name"] + ":v" + rows["version"].astype(str)
    st.dataframe(rows[["direction", "artifact", "type", "size", "files", "created_at", "digest"]], hide_index=True,
                 width="stretch", column_config={"size": st.column_config.NumberColumn("bytes", format="%d")})


def _flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and len(flat) < 50_000:
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    return json.dumps(value)


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _escape(text: str) -> str:
    return html.escape(text)


alt.data_transformers.disable_max_rows()
main()
