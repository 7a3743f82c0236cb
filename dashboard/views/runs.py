"""/runs: every run of a project, filtered, sorted and paged in ClickHouse; pick runs to compare, open
one (every name links to its run page), delete and restore runs with a write key."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from dashboard.data import FILTER_OPS, RunFilter, RunSort
from dashboard.edits import EditError
from dashboard.runs_table import LINK_NAME, important_keys, runs_frame, styled, upfront
from dashboard.state import (
    any_running,
    editor,
    may_write,
    md,
    page_link,
    project_picker,
    read,
    refresh_button,
    reread,
    to_url,
    url_key,
)

PAGE_SIZES = [25, 50, 100, 200]
FIXED_SORTS = {"created": "Created", "updated": "Last heartbeat", "name": "Name", "state": "State",
               "duration": "Duration"}
DEFAULT_CONFIG_COLUMNS = 5
DEFAULT_SUMMARY_COLUMNS = 6
LIVE_REFRESH_S = 5


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    st.header(f"Runs · {project}", anchor=False)
    deleted = st.toggle("Deleted runs", key=url_key("deleted", False),
                        help="Runs deleted from the dashboard: kept in the store, hidden everywhere else")
    to_url("deleted", deleted, False)
    states = read("states", project, deleted).to_pandas()
    if states.empty:
        st.info("No deleted runs." if deleted else f"Project {project!r} has no runs yet.")
        return
    config_keys = read("run_keys", project, "config").to_pandas()
    summary_keys = read("run_keys", project, "summary").to_pandas()
    where = replace(_filters(project, states, config_keys, summary_keys), deleted=deleted)
    sort = _sort(config_keys, summary_keys)
    config_columns, summary_columns = _columns(config_keys, summary_keys, read("metric_definitions", project))
    for field, key in ((sort.by, sort.key), (where.field, where.key)):  # what the page sorts or filters by, shown
        if key and field == "summary" and key not in summary_columns:
            summary_columns = [key, *summary_columns]
        elif key and field == "config" and key not in config_columns:
            config_columns = [key, *config_columns]
    size_key = url_key("size", 50, PAGE_SIZES)
    page_key = url_key("page", 1)
    # Probe the first page to learn whether anything on it is live; the fragment redraws itself.
    live = any_running(read("runs_page", project, where, sort, st.session_state[size_key],
                            (st.session_state[page_key] - 1) * st.session_state[size_key]).to_pandas())
    st.fragment(run_every=LIVE_REFRESH_S if live else None)(_table)(
        project, where, sort, config_columns, summary_columns, size_key, page_key, live)


def _filters(project: str, states, config_keys, summary_keys) -> RunFilter:
    text_col, state_col, tag_col, key_col, op_col, value_col = st.columns([3, 3, 2, 3, 2, 2])
    text = text_col.text_input("Search", key=url_key("q", ""), placeholder="name, id, group, notes, tag…")
    to_url("q", text, "")
    state_options = list(states["state"])
    counts = dict(zip(states["state"], states["runs"]))
    chosen = state_col.multiselect("State", state_options, key=url_key("state", [], state_options),
                                   format_func=lambda s: f"{s} ({counts[s]:,})")
    to_url("state", chosen, [])
    tags = [""] + list(read("tags", project).to_pandas()["tag"])
    tag = tag_col.selectbox("Tag", tags, key=url_key("tag", "", tags), format_func=lambda t: t or "any")
    to_url("tag", tag, "")
    keys = [""] + [f"config.{k}" for k in config_keys["key"]] + [f"summary.{k}" for k in summary_keys["key"]]
    field_key = key_col.selectbox("Filter by", keys, key=url_key("where", "", keys), format_func=lambda k: k or "—",
                                  help="A config or summary entry to compare with a value")
    to_url("where", field_key, "")
    op = op_col.selectbox("Op", FILTER_OPS, key=url_key("op", "=", list(FILTER_OPS)), label_visibility="visible")
    to_url("op", op, "=")
    value = value_col.text_input("Value", key=url_key("value", ""), disabled=not field_key)
    to_url("value", value, "")
    field, _, key = field_key.partition(".")
    return RunFilter(text=text.strip(), states=tuple(chosen), tag=tag, field=field or "config",
                     key=key if value or op == "contains" else "", op=op, value=value)


def _sort(config_keys, summary_keys) -> RunSort:
    options = list(FIXED_SORTS) + [f"config.{k}" for k in config_keys["key"]] + \
        [f"summary.{k}" for k in summary_keys["key"]]
    sort_col, order_col, _ = st.columns([3, 3, 9])
    by = sort_col.selectbox("Sort by", options, key=url_key("sort", "created", options),
                            format_func=lambda o: FIXED_SORTS.get(o, o))
    to_url("sort", by, "created")
    order = order_col.segmented_control("Order", ["desc", "asc"], key=url_key("order", "desc", ["desc", "asc"]),
                                        format_func={"desc": "↓ desc", "asc": "↑ asc"}.get) or "desc"
    to_url("order", order, "desc")
    field, _, key = by.partition(".")
    return RunSort(by=field if key else by, key=key, descending=order == "desc")


def _columns(config_keys, summary_keys, definitions: dict) -> tuple[list[str], list[str]]:
    scalar = ("Int64", "UInt64", "Double", "String", "Bool")
    config_default = [k for k, t in zip(config_keys["key"], config_keys["type"]) if t in scalar]
    summary_default = important_keys(summary_keys, definitions)
    with st.expander("Columns"):
        config_options, summary_options = list(config_keys["key"]), list(summary_keys["key"])
        config = st.multiselect("Config columns", config_options,
                                key=url_key("cfg", config_default[:DEFAULT_CONFIG_COLUMNS], config_options))
        summary = st.multiselect("Summary columns", summary_options,
                                 key=url_key("sum", summary_default[:DEFAULT_SUMMARY_COLUMNS], summary_options))
    to_url("cfg", config, config_default[:DEFAULT_CONFIG_COLUMNS])
    to_url("sum", summary, summary_default[:DEFAULT_SUMMARY_COLUMNS])
    return config, summary


def _table(project: str, where: RunFilter, sort: RunSort, config_columns: list[str], summary_columns: list[str],
           size_key: str, page_key: str, live: bool) -> None:
    size = st.session_state[size_key]
    page_number = max(1, st.session_state[page_key])
    page = read("runs_page", project, where, sort, size, (page_number - 1) * size, tuple(config_columns),
                tuple(summary_columns), live=live).to_pandas()
    total = int(page["total"].iloc[0]) if not page.empty else 0
    if page.empty:
        st.info("No run matches these filters." if page_number == 1 else "No runs on this page.")
        if page_number == 1:
            return
    table = upfront(runs_frame(page, config_columns, summary_columns, project),
                    [_column_of(sort.by, sort.key), _column_of(where.field, where.key)])
    selection = st.dataframe(
        styled(table), hide_index=True, on_select="rerun", selection_mode="multi-row",
        key=f"runs-table-{project}-{where.deleted}", width="stretch",
        height=min(38 + 35 * len(table), 38 + 35 * 20),
        column_config={
            "state": st.column_config.TextColumn("state", width="small"),
            "name": st.column_config.LinkColumn("name", width="medium", display_text=LINK_NAME,
                                                help="Opens the run's page"),
            "created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm:ss"),
            "duration": st.column_config.TextColumn("duration", width="small"),
            "tags": st.column_config.ListColumn("tags"),
            "job_type": st.column_config.TextColumn("job type", width="small"),
            "notes": st.column_config.TextColumn("notes", width="medium"),
            "error": st.column_config.TextColumn("error", width="medium"),
            **{f"config.{k}": st.column_config.Column(f"config.{k}") for k in config_columns},
        })
    chosen = [page["run_id"].iloc[i] for i in selection.selection.rows if i < len(page)]
    first, last = (page_number - 1) * size + 1, (page_number - 1) * size + len(page)
    pages = max(1, -(-total // size))
    info, size_col, page_col = st.columns([6, 1, 1])
    info.caption(f"Runs {first:,}–{last:,} of {total:,}" + (" · refreshing while runs are running" if live else "")
                 + " · tick rows to compare them")
    size_col.selectbox("Rows per page", PAGE_SIZES, key=size_key)
    page_col.number_input(f"Page (of {pages:,})", min_value=1, max_value=max(pages, page_number), key=page_key)
    to_url("size", st.session_state[size_key], 50)
    to_url("page", st.session_state[page_key], 1)
    _open(chosen)
    if chosen and may_write(project):
        _delete_or_restore(project, chosen, where.deleted)


def _column_of(field: str, key: str) -> str:
    """The table column of a config or summary entry (what runs_frame calls it)."""
    if not key:
        return ""
    return f"config.{key}" if field == "config" else key


def _open(chosen: list[str]) -> None:
    """Links that open the ticked runs on the other pages."""
    st.markdown(f"**{len(chosen)} selected**" if chosen else "Tick runs in the table to open them:")
    columns = st.columns(5)
    single = chosen[:1]
    with columns[0]:
        _link("views/run.py", "Run page", ":material/article:", single, "run")
    with columns[1]:
        _link("views/charts.py", "Compare on Charts", ":material/show_chart:", chosen, "runs")
    with columns[2]:
        _link("views/system.py", "System", ":material/memory:", chosen, "runs")
    with columns[3]:
        _link("views/model.py", "Model", ":material/hub:", single, "run")
    with columns[4]:
        _link("views/media.py", "Media", ":material/image:", chosen, "runs")


def _delete_or_restore(project: str, chosen: list[str], deleted: bool) -> None:
    """Soft-delete the ticked runs (or, among deleted runs, restore them) through the ingest."""
    label = f"Restore {len(chosen)} run{'s' if len(chosen) > 1 else ''}" if deleted else \
        f"Delete {len(chosen)} run{'s' if len(chosen) > 1 else ''}"
    if not st.button(label, icon=":material/restore_from_trash:" if deleted else ":material/delete:",
                     help="Deleted runs are hidden everywhere and kept; restore them from 'Deleted runs'"):
        return
    change = editor().restore if deleted else editor().delete
    try:
        for run_id in chosen:
            change(project, run_id)
    except EditError as exc:
        st.error(f"The ingest refused: {md(str(exc))}")
        return
    reread()
    st.rerun()


def _link(page: str, label: str, icon: str, runs: list[str], param_name: str) -> None:
    if runs:
        page_link(page, label, icon, **{param_name: runs})
    else:
        st.page_link(page, label=label, icon=icon, disabled=True)


main()
