"""/charts: every metric of the selected runs, the user's own first, with one legend for the page, live.

The x-axis is the step, wall or relative time, or any logged metric (by default a key's own
`define_metric(step_metric=...)`); runs can be grouped by group, job type or a config entry into a
mean line over a min–max band. Search covers every key, a page of charts at a time.
"""

from __future__ import annotations

import re

import altair as alt
import streamlit as st

from dashboard import panels
from dashboard.panels import PanelOptions, split_watch
from dashboard.state import (
    LIVE_S,
    any_running,
    md,
    project_picker,
    read,
    refresh_button,
    run_names,
    run_picker,
    to_url,
    url_key,
)

GROUP_CONFIG_KEYS = 50


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    run_ids = run_picker(project)
    st.header("Charts", anchor=False)
    if not run_ids:
        st.info("Pick runs in the sidebar, or tick them on the Runs page.")
        return
    runs = read("runs", project, tuple(run_ids)).to_pandas()
    live = any_running(runs)
    keys = read("metric_keys", project, tuple(run_ids), live=live)
    options, pattern = _options(project, keys)
    # Only the fragment reruns on the timer: widgets keep their state and the page does not flash.
    st.fragment(run_every=LIVE_S if live else None)(_charts)(project, run_ids, options, pattern, live)


def _options(project: str, keys: list[str]) -> tuple[PanelOptions, str]:
    search_col, x_col, group_col = st.columns([4, 4, 4], vertical_alignment="bottom")
    pattern = search_col.text_input("Search metrics", key=url_key("keys", ""), placeholder="regex, e.g. loss|acc")
    to_url("keys", pattern, "")
    x_choices = panels.x_options(keys)
    x = x_col.selectbox("X axis", list(x_choices), format_func=x_choices.get,
                        key=url_key("x", "auto", list(x_choices)),
                        help="Auto: a key's step_metric from define_metric, else the step") or "auto"
    to_url("x", x, "auto")
    config_keys = list(read("run_keys", project, "config", GROUP_CONFIG_KEYS).to_pandas()["key"])
    groups = ["", "group", "job_type", *[f"config.{k}" for k in config_keys]]
    group = group_col.selectbox("Group runs by", groups, key=url_key("group", "", groups),
                                format_func=lambda g: g or "— (one line per run)",
                                help="One mean line per group over its min–max band, as W&B groups runs") or ""
    to_url("group", group, "")
    smooth_col, log_col, band_col, cols_col = st.columns([4, 2, 3, 4], vertical_alignment="center")
    smoothing = smooth_col.slider("Smoothing (EMA)", 0.0, 0.99, step=0.01, key=url_key("smooth", 0.0),
                                  help="Exponential moving average weight, as in W&B; 0 is off")
    to_url("smooth", smoothing, 0.0)
    log_y = log_col.toggle("Log y", key=url_key("log", False))
    to_url("log", log_y, False)
    band = band_col.toggle("Min–max band", key=url_key("band", True),
                           help="Shade each downsampled bucket from its min to its max. Spikes stay visible "
                                "either way: without the band the line passes through each bucket's extremes")
    to_url("band", band, True)
    columns = cols_col.segmented_control("Columns", [1, 2, 3], key=url_key("cols", 2, [1, 2, 3]),
                                         label_visibility="collapsed", format_func=lambda n: f"{n} per row") or 2
    to_url("cols", columns, 2)
    return PanelOptions(x=x, smoothing=smoothing, log_y=log_y, band=band, columns=columns, group=group), pattern


def _charts(project: str, run_ids: list[str], options: PanelOptions, pattern: str, was_live: bool) -> None:
    runs = read("runs", project, tuple(run_ids), live=was_live).to_pandas()
    keys = matching(read("metric_keys", project, tuple(run_ids), live=was_live), pattern)
    definitions = read("metric_definitions", project, tuple(run_ids), live=was_live)
    user_keys, watch_keys = split_watch(keys)
    if not keys:
        st.info("The selected runs have not logged any metrics yet." if not pattern
                else "No metric matches the search.")
    else:
        _live_caption(project, run_ids, runs, was_live)
        if user_keys:
            panels.draw(project, run_ids, runs, user_keys, options, definitions, key_prefix="charts:user",
                        live=was_live)
        if watch_keys:
            st.subheader(f"Gradient and weight norms · watch() ({len(watch_keys)})", anchor=False, divider="gray")
            if st.toggle("Show the norms watch() logged", key="charts:show-watch", value=not user_keys):
                panels.draw(project, run_ids, runs, watch_keys, options, definitions, key_prefix="charts:watch",
                            live=was_live)
    if was_live and not any_running(runs):
        st.rerun()  # the last run ended: a full rerun draws the page without the refresh timer


def matching(keys: list[str], pattern: str) -> list[str]:
    """Keys matching the search: a regex (case-insensitive), or plain text when it is not one."""
    if not pattern:
        return keys
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error:
        return [k for k in keys if pattern.lower() in k.lower()]
    return [k for k in keys if regex.search(k)]


def _live_caption(project: str, run_ids: list[str], runs, live: bool) -> None:
    """How far each run has got: its last step and its state."""
    progress = read("run_progress", project, tuple(run_ids), live=live).to_pandas()
    if progress.empty:
        return
    names = run_names(runs)
    states = dict(zip(runs["run_id"], runs["state"]))
    parts = [f"**{md(names.get(r, r))}** {states.get(r, '')} · step {int(step):,} · {int(n):,} points"
             for r, step, n in zip(progress["run_id"], progress["last_step"], progress["points"])]
    st.caption(" | ".join(parts))


alt.data_transformers.disable_max_rows()
main()
