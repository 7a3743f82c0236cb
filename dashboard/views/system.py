"""/system: what the system monitor sampled — GPUs per device, CPU, memory, disk, network — per run."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.lines import colors, line_chart, nonfinite_summary, prepare
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
from dashboard.system_keys import SECTIONS, TITLES, is_percent, title

BUCKETS = 500
X_OPTIONS = {"relative": "Relative time", "wall": "Wall time"}


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    run_ids = run_picker(project, default_count=1)
    st.header("System", anchor=False)
    if not run_ids:
        st.info("Pick runs in the sidebar, or tick them on the Runs page.")
        return
    x_col, cols_col, _ = st.columns([3, 2, 7])
    x_mode = x_col.segmented_control("X axis", list(X_OPTIONS), format_func=X_OPTIONS.get,
                                     key=url_key("x", "relative", list(X_OPTIONS))) or "relative"
    to_url("x", x_mode, "relative")
    columns = cols_col.segmented_control("Columns", [1, 2, 3], key=url_key("cols", 3, [1, 2, 3])) or 3
    to_url("cols", columns, 3)
    runs = read("runs", project, tuple(run_ids)).to_pandas()
    live = any_running(runs)
    st.fragment(run_every=LIVE_S if live else None)(_panels)(project, run_ids, x_mode, columns, live)


def _panels(project: str, run_ids: list[str], x_mode: str, columns: int, was_live: bool) -> None:
    runs = read("runs", project, tuple(run_ids), live=was_live).to_pandas()
    keys = read("system_keys", project, tuple(run_ids), live=was_live).to_pandas()
    if keys.empty:
        st.info("No system samples for these runs. The emitter's system monitor samples every "
                "`PULSE_SYSTEM_INTERVAL` seconds (default 2) while a run is running.")
    else:
        points = read("system_series", project, tuple(run_ids), tuple(keys["key"]), BUCKETS, live=was_live)
        _draw(points.to_pandas(), runs, run_ids, list(keys["key"]), x_mode, columns)
    if was_live and not any_running(runs):
        st.rerun()


def _draw(points: pd.DataFrame, runs: pd.DataFrame, run_ids: list[str], keys: list[str], x_mode: str,
          columns: int) -> None:
    names = run_names(runs)
    starts = dict(zip(runs["run_id"], runs["created_at"]))
    points["series"] = series_names(points, names, several_runs=len(run_ids) > 1)
    domain = sorted(points["series"].unique(), key=lambda s: (s.split(" · ")[0], s))
    color_of = dict(zip(domain, colors(domain)))  # a device keeps its colour on every chart
    for section, section_keys in sections(keys).items():
        st.subheader(section, anchor=False, divider="gray")
        grid = st.columns(columns)
        for i, key in enumerate(section_keys):
            rows = points[points["key"] == key].reset_index(drop=True)
            with grid[i % columns]:
                if rows.empty:
                    continue
                frame, x_title = prepare(rows, rows["series"], x_mode, rows["run_id"].map(starts))
                present = [s for s in domain if s in set(frame["series"])]  # the legend names what is drawn
                st.altair_chart(line_chart(frame, title(key), present, x_title, x_mode, band=True, height=240,
                                           y_scale=y_scale(key, frame), color_of=color_of), width="stretch")
                flagged = nonfinite_summary(frame)
                if flagged:
                    st.caption(f":red[▼ non-finite values: {md(flagged)}]")


def y_scale(key: str, frame: pd.DataFrame) -> alt.Scale:
    """Percentages on 0–100 and other readings from 0, so 99.6–100 % CPU reads as full, not as a crash;
    only a series that goes below 0 gets an axis fitted to it."""
    if is_percent(key):
        high = frame["max"].max()
        return alt.Scale(domain=[0, max(100.0, float(high)) if pd.notna(high) else 100.0])
    low = frame["min"].min()
    return alt.Scale(zero=not (pd.notna(low) and low < 0))


def sections(keys: list[str]) -> dict[str, list[str]]:
    """Keys under their section (GPU first), in TITLES order, then alphabetically."""
    order = {key: i for i, key in enumerate(TITLES)}
    found: dict[str, list[str]] = {}
    for key in sorted(keys, key=lambda k: (order.get(k, len(order)), k)):
        found.setdefault(SECTIONS.get(key.split(".", 1)[0], "Other"), []).append(key)
    ranked = list(SECTIONS.values()) + ["Other"]
    return {name: found[name] for name in ranked if name in found}


def series_names(points: pd.DataFrame, names: dict[str, str], several_runs: bool) -> pd.Series:
    """A line per run, host and device: 'gpu0', or 'run-a · gpu0' when several runs are shown."""
    several_hosts = points["host"].nunique() > 1
    labels = []
    for run_id, host, device in zip(points["run_id"], points["host"], points["device"]):
        parts = [names.get(run_id, run_id)] if several_runs or not device else []
        if several_hosts:
            parts.append(host)
        if device:
            parts.append(device)
        labels.append(" · ".join(parts))
    return pd.Series(labels, index=points.index)


main()
