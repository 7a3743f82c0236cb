"""/charts: one chart per metric key, grouped by prefix, every selected run overlaid, live."""

from __future__ import annotations

import re

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.lines import X_MODES, line_chart, nonfinite_summary, prepare
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

MAX_CHARTS = 36
# About one bucket per horizontal pixel of a chart at the chosen number of columns.
BUCKETS = {1: 1200, 2: 700, 3: 450}


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
    options = _options()
    runs = read("runs", project, tuple(run_ids)).to_pandas()
    live = any_running(runs)
    # Only the fragment reruns on the timer: widgets keep their state and the page does not flash.
    st.fragment(run_every=LIVE_S if live else None)(_charts)(project, run_ids, options, live)


def _options() -> dict:
    x_col, smooth_col, filter_col = st.columns([4, 4, 4], vertical_alignment="bottom")
    log_col, band_col, cols_col, _ = st.columns([2, 3, 4, 3], vertical_alignment="center")
    x_mode = x_col.segmented_control("X axis", list(X_MODES), format_func=X_MODES.get,
                                     key=url_key("x", "step", list(X_MODES))) or "step"
    to_url("x", x_mode, "step")
    smoothing = smooth_col.slider("Smoothing (EMA)", 0.0, 0.99, step=0.01, key=url_key("smooth", 0.0),
                                  help="Exponential moving average weight, as in W&B; 0 is off")
    to_url("smooth", smoothing, 0.0)
    log_y = log_col.toggle("Log y", key=url_key("log", False))
    to_url("log", log_y, False)
    band = band_col.toggle("Min–max band", key=url_key("band", True),
                           help="Shade each downsampled bucket from its min to its max, so spikes stay visible")
    to_url("band", band, True)
    columns = cols_col.segmented_control("Columns", [1, 2, 3], key=url_key("cols", 2, [1, 2, 3]),
                                         label_visibility="collapsed", format_func=lambda n: f"{n} per row") or 2
    to_url("cols", columns, 2)
    pattern = filter_col.text_input("Filter metrics", key=url_key("keys", ""), placeholder="regex, e.g. loss|acc")
    to_url("keys", pattern, "")
    return {"x_mode": x_mode, "smoothing": smoothing, "log_y": log_y, "band": band, "columns": columns,
            "pattern": pattern}


def _charts(project: str, run_ids: list[str], options: dict, was_live: bool) -> None:
    runs = read("runs", project, tuple(run_ids), live=was_live).to_pandas()
    keys = read("metric_keys", project, tuple(run_ids), live=was_live)
    keys = _matching(keys, options["pattern"])
    if not keys:
        st.info("The selected runs have not logged any metrics yet." if not options["pattern"]
                else "No metric matches the filter.")
    else:
        shown = keys[:MAX_CHARTS]
        if len(keys) > MAX_CHARTS:
            st.caption(f"Showing {MAX_CHARTS} of {len(keys)} metrics; narrow them with the filter.")
        points = read("series", project, tuple(run_ids), tuple(shown), BUCKETS[options["columns"]],
                      live=was_live).to_pandas()
        _draw(points, runs, run_ids, shown, options)
    if was_live and not any_running(runs):
        st.rerun()  # the last run ended: a full rerun draws the page without the refresh timer


def _matching(keys: list[str], pattern: str) -> list[str]:
    if not pattern:
        return keys
    try:
        regex = re.compile(pattern, re.IGNORECASE)
    except re.error:
        return [k for k in keys if pattern.lower() in k.lower()]
    return [k for k in keys if regex.search(k)]


def _draw(points: pd.DataFrame, runs: pd.DataFrame, run_ids: list[str], keys: list[str], options: dict) -> None:
    names = run_names(runs)
    domain = [names[r] for r in run_ids if r in names]
    starts = dict(zip(runs["run_id"], runs["created_at"]))
    _live_caption(points, runs, names)
    for group, group_keys in _groups(keys).items():
        st.subheader(group or "Metrics", anchor=False, divider="gray")
        columns = st.columns(options["columns"])
        for i, key in enumerate(group_keys):
            rows = points[points["key"] == key].reset_index(drop=True)
            with columns[i % options["columns"]]:
                if rows.empty:
                    st.caption(f"{key}: no points yet")
                    continue
                frame, x_title = prepare(rows, rows["run_id"].map(names).fillna(rows["run_id"]), options["x_mode"],
                                         rows["run_id"].map(starts), options["smoothing"], options["log_y"])
                chart = line_chart(frame, key, domain, x_title, options["x_mode"], options["log_y"],
                                   options["band"], smoothed=options["smoothing"] > 0)
                st.altair_chart(chart, width="stretch")
                flagged = nonfinite_summary(frame)
                if flagged:
                    st.caption(f":red[▼ non-finite values: {md(flagged)}]")


def _groups(keys: list[str]) -> dict[str, list[str]]:
    """Keys by the prefix before their first '/' (`Train/loss` -> `Train`); ungrouped keys first."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys, key=lambda k: ("/" in k, k.split("/", 1)[0].lower(), k)):
        prefix = key.split("/", 1)[0] if "/" in key else ""
        groups.setdefault(prefix, []).append(key)
    return groups


def _live_caption(points: pd.DataFrame, runs: pd.DataFrame, names: dict[str, str]) -> None:
    """How far each run has got: the last step drawn, and its state."""
    if points.empty:
        return
    last = points.groupby("run_id")["step"].max()
    total = points.groupby("run_id")["points"].sum()
    states = dict(zip(runs["run_id"], runs["state"]))
    parts = [f"**{md(names.get(r, r))}** {states.get(r, '')} · step {int(last[r]):,} · {int(total[r]):,} points"
             for r in last.index]
    st.caption(" | ".join(parts))


alt.data_transformers.disable_max_rows()
main()
