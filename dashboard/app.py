"""Pulse dashboard: a project's runs and their metric charts, live while runs are running.

Run it with `pulse dashboard` (or `streamlit run dashboard/app.py` with PULSE_SERVER set).
All reads go through `dashboard.data`; this file only lays out the page.
"""

from __future__ import annotations

import json
import math

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.data import DataError, Source

REFRESH_S = 2
DEFAULT_RUNS = 5
MAX_CHARTS = 12
SUMMARY_COLUMNS = 6
# About one point per pixel of a chart in the two-column grid.
BUCKETS = 600


@st.cache_resource
def _source() -> Source:
    return Source()


def main() -> None:
    st.set_page_config(page_title="Pulse", page_icon="📈", layout="wide")
    st.title("Pulse")
    try:
        source = _source()
        projects = source.projects()
    except DataError as exc:
        st.error(f"Cannot read runs: {exc}")
        return
    wanted = st.query_params.get("project")
    if not projects and not wanted:
        st.info("No runs yet. Log one with `emitter.init(project=...)` and `emitter.log({...})`.")
        return
    options = projects if not wanted or wanted in projects else [wanted, *projects]
    project = st.selectbox("Project", options, index=options.index(wanted) if wanted in options else 0)
    if wanted != project:
        st.query_params["project"] = project

    try:
        runs = source.runs(project).to_pandas()
    except DataError as exc:
        st.error(f"Cannot read the runs of {project!r}: {exc}")
        return
    if runs.empty:
        st.info(f"Project {project!r} has no runs yet.")
        return
    labels = _labels(runs)
    # `?run=ID` (the link a finished run prints) selects that run; else the newest few.
    linked = st.query_params.get("run")
    default = [linked] if linked in labels else list(runs["run_id"][:DEFAULT_RUNS])
    selected = st.multiselect("Runs", list(runs["run_id"]), default=default, format_func=labels.get)
    live = _any_running(runs, selected)
    # Only the fragment reruns on the timer: widgets keep their state and the page does not flash.
    st.fragment(run_every=REFRESH_S if live else None)(_live_view)(source, project, selected, live)


def _live_view(source: Source, project: str, selected: list[str], was_live: bool) -> None:
    try:
        runs = source.runs(project).to_pandas()
        keys = source.metric_keys(project, selected)
    except DataError as exc:
        st.error(f"Cannot read project {project!r}: {exc}")
        return
    st.dataframe(_runs_table(runs), hide_index=True, column_config={
        "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        "last heartbeat": st.column_config.DatetimeColumn(format="distance"),
    })
    if not selected:
        st.info("Select runs to chart their metrics.")
    elif not keys:
        st.info("The selected runs have not logged any metrics yet.")
    else:
        _charts(source, project, selected, keys, _labels(runs))
    if was_live and not _any_running(runs, selected):
        st.rerun()  # a full run redraws the page without the refresh timer


def _charts(source: Source, project: str, selected: list[str], keys: list[str],
            labels: dict[str, str]) -> None:
    if len(keys) > MAX_CHARTS:
        st.caption(f"Showing the first {MAX_CHARTS} of {len(keys)} metrics.")
    # One colour per run across every chart, whichever runs logged the key.
    domain = [labels[run_id] for run_id in selected if run_id in labels]
    columns = st.columns(2)
    for i, key in enumerate(keys[:MAX_CHARTS]):
        with columns[i % 2]:
            try:
                points = source.series(project, selected, key, buckets=BUCKETS).to_pandas()
            except DataError as exc:
                st.error(f"Cannot read {key!r}: {exc}")
                continue
            points["run"] = points["run_id"].map(labels).fillna(points["run_id"])
            st.altair_chart(_chart(_finite(points), key, domain), width="stretch")


def _chart(points: pd.DataFrame, key: str, domain: list[str]) -> alt.LayerChart:
    """The last value per bucket as a line over a min–max band, so spikes survive downsampling."""
    legend = alt.Legend(orient="bottom", title=None, symbolType="stroke", symbolOpacity=1,
                        symbolStrokeWidth=3)
    color = alt.Color("run:N", scale=alt.Scale(domain=domain, scheme="tableau10"), legend=legend)
    base = alt.Chart(points).encode(x=alt.X("step:Q", title="step"), color=color)
    band = base.mark_area(opacity=0.25).encode(y=alt.Y("min:Q"), y2="max:Q")
    line = base.mark_line().encode(
        y=alt.Y("last:Q", title=None, scale=alt.Scale(zero=False)),
        tooltip=["run:N", "step:Q", alt.Tooltip("last:Q", format=".4g"),
                 alt.Tooltip("min:Q", format=".4g"), alt.Tooltip("max:Q", format=".4g")],
    )
    return (band + line).properties(title=key, height=260)


def _finite(points: pd.DataFrame) -> pd.DataFrame:
    """NaN and ±inf become gaps: Vega-Lite cannot draw them and JSON cannot carry them."""
    for column in ("min", "max", "last"):
        points[column] = points[column].where(points[column].map(math.isfinite))
    return points


def _runs_table(runs: pd.DataFrame) -> pd.DataFrame:
    table = pd.DataFrame({"name": runs["name"], "state": runs["state"], "created": runs["created_at"],
                          "last heartbeat": runs["heartbeat_at"], "run id": runs["run_id"]})
    summaries = [_summary(text) for text in runs["summary"]]
    keys = sorted({k for summary in summaries for k in summary})[:SUMMARY_COLUMNS]
    for key in keys:
        table[key] = [summary.get(key) for summary in summaries]
    return table


def _summary(text: str) -> dict[str, float]:
    """The summary's numeric entries; internal keys (`_step`, ...) left out."""
    try:
        summary = json.loads(text or "{}")
    except ValueError:
        return {}
    if not isinstance(summary, dict):
        return {}
    return {k: v for k, v in summary.items()
            if not k.startswith("_") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def _labels(runs: pd.DataFrame) -> dict[str, str]:
    """run_id -> the name to show; the id is added where two runs share a name."""
    names = runs["name"].where(runs["name"] != "", runs["run_id"])
    counts = names.value_counts()
    return {run_id: name if counts[name] == 1 else f"{name} ({run_id})"
            for run_id, name in zip(runs["run_id"], names)}


def _any_running(runs: pd.DataFrame, selected: list[str]) -> bool:
    return bool(runs.loc[runs["run_id"].isin(selected), "state"].eq("running").any())


main()
