"""/model: gradient-health flags first, then gradient norms per layer, histogram heatmaps, the graph."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from dashboard.graph import GraphFormatError, describe, parse, to_dot
from dashboard.health import KINDS, gradient_flags, other_alerts, watch_ran
from dashboard.heatmap import heatmap_chart, rebin
from dashboard.lines import line_chart, prepare
from dashboard.state import LIVE_S, any_running, md, project_picker, read, refresh_button, run_picker, to_url, url_key

HEATMAP_STEPS = 120
HEATMAP_BINS = 48
DEFAULT_HEATMAPS = 8
DEFAULT_NORM_LINES = 20
NORM_BUCKETS = 800
HISTOGRAM_KINDS = {"gradients": "Gradients", "parameters": "Weights"}


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    run_ids = run_picker(project, multiple=False)
    if not run_ids:
        st.header("Model", anchor=False)
        st.info("Pick a run in the sidebar.")
        return
    run = read("runs", project, tuple(run_ids)).to_pandas()
    st.fragment(run_every=LIVE_S * 5 if any_running(run) else None)(_model)(project, run_ids[0])


def _model(project: str, run_id: str) -> None:
    run = read("runs", project, (run_id,), live=True).to_pandas()
    if run.empty:
        st.warning("This run is not in the project.")
        return
    name = run["name"].iloc[0] or run_id
    st.header(f"Model · {name}", anchor=False)
    summary = _json(run["summary"].iloc[0])
    histogram_keys = read("histogram_keys", project, run_id, live=True).to_pandas()
    alerts = read("alerts", project, (run_id,), live=True).to_pandas()
    flags = gradient_flags(alerts, summary, histogram_keys)
    watched = watch_ran(summary, histogram_keys, read("metric_keys", project, (run_id,), live=True))
    _health(flags, other_alerts(alerts), watched)
    flagged = {f.param for f in flags}
    _norms(project, run_id, flagged)
    _heatmaps(project, run_id, histogram_keys, flagged)
    _graph(project, run_id)


def _health(flags: list, alerts: pd.DataFrame, watched: bool) -> None:
    st.subheader("Gradient health", anchor=False)
    if not flags and not watched:
        # Nothing was checked, so nothing may look reassuring.
        st.info("No gradient data (watch() not called): `emitter.watch(model)` logs gradient norms and "
                "histograms and flags NaN/Inf, exploding and vanishing gradients.", icon=":material/info:")
    else:
        counts = st.columns(len(KINDS))
        for column, (kind, label) in zip(counts, KINDS.items()):
            n = sum(1 for f in flags if f.kind == kind)
            column.metric(label, f"{n} parameter{'s' if n != 1 else ''}" if n else "none")
    if not flags and watched:
        st.success("No gradient-health flags: no NaN/Inf, exploding or vanishing gradients were detected.",
                   icon=":material/check_circle:")
    for flag in flags:
        where = f" · step {flag.step:,}" if flag.step is not None else ""
        text = f"**{KINDS[flag.kind]}** in `{flag.param}`{where} — {md(flag.text)}"
        if flag.level == "ERROR" or flag.kind == "nonfinite":
            st.error(text, icon=":material/error:")
        else:
            st.warning(text, icon=":material/warning:")
    if not alerts.empty:
        with st.expander(f"Alerts ({len(alerts)})", expanded=len(alerts) <= 5):
            st.dataframe(alerts[["ts", "level", "title", "text"]], hide_index=True, width="stretch",
                         column_config={"ts": st.column_config.DatetimeColumn("time (UTC)",
                                                                             format="YYYY-MM-DD HH:mm:ss")})


def _norms(project: str, run_id: str, flagged: set[str]) -> None:
    keys = [k for k in read("metric_keys", project, (run_id,), live=True) if k.startswith("grad_norm/")]
    st.subheader("Gradient norms per layer", anchor=False)
    if not keys:
        st.info("No gradient norms: call `emitter.watch(model)` to log them.")
        return
    params = [k.removeprefix("grad_norm/") for k in keys]
    ranked = sorted(params, key=lambda p: (p not in flagged, params.index(p)))
    chosen = st.multiselect("Layers", params, key=url_key("layers", ranked[:DEFAULT_NORM_LINES], params),
                            help="Flagged layers come first")
    to_url("layers", chosen, ranked[:DEFAULT_NORM_LINES])
    if not chosen:
        return
    points = read("series", project, (run_id,), tuple(f"grad_norm/{p}" for p in chosen), NORM_BUCKETS,
                  live=True).to_pandas()
    if points.empty:
        return
    frame, x_title = prepare(points, points["key"].str.removeprefix("grad_norm/"), "step", log_y=True)
    st.altair_chart(line_chart(frame, "gradient L2 norm (log scale)", chosen, x_title, log_y=True, height=320),
                    width="stretch")


def _heatmaps(project: str, run_id: str, histogram_keys: pd.DataFrame, flagged: set[str]) -> None:
    st.subheader("Histograms over steps", anchor=False)
    if histogram_keys.empty:
        st.info("No histograms: `emitter.watch(model, log=\"all\")` logs gradient and weight histograms.")
        return
    kinds = [k for k in HISTOGRAM_KINDS if any(key.startswith(f"{k}/") for key in histogram_keys["key"])]
    own = [key for key in histogram_keys["key"] if not key.startswith(tuple(f"{k}/" for k in HISTOGRAM_KINDS))]
    if own:  # the user's emitter.Histogram keys, beside watch()'s
        kinds.append("other")
    kind_col, param_col = st.columns([3, 9])
    kind = kind_col.segmented_control("Of", kinds, format_func=lambda k: HISTOGRAM_KINDS.get(k, "Yours"),
                                      key=url_key("hist", kinds[0], kinds)) or kinds[0]
    to_url("hist", kind, kinds[0])
    prefix = f"{kind}/" if kind in HISTOGRAM_KINDS else ""
    keys = [k for k in histogram_keys["key"] if k.startswith(prefix)] if prefix else own
    params = [k.removeprefix(prefix) for k in keys]
    ranked = sorted(params, key=lambda p: (p not in flagged, params.index(p)))
    chosen = param_col.multiselect("Parameters", params, key=url_key("params", ranked[:DEFAULT_HEATMAPS], params))
    to_url("params", chosen, ranked[:DEFAULT_HEATMAPS])
    if not chosen:
        return
    rows = read("histograms", project, run_id, tuple(prefix + p for p in chosen), HEATMAP_STEPS,
                live=True).to_pandas()
    grid = st.columns(2)
    for i, param in enumerate(chosen):
        cells = rebin(rows[rows["key"] == prefix + param], bins=HEATMAP_BINS)
        with grid[i % 2]:
            if cells.empty:
                st.caption(f"{param}: no histograms yet")
                continue
            title = f"⚠ {param}" if param in flagged else param
            st.altair_chart(heatmap_chart(cells, title), width="stretch")


def _graph(project: str, run_id: str) -> None:
    st.subheader("Model graph", anchor=False)
    text = read("model_graph", project, run_id)
    if not text:
        st.info("No model graph: `emitter.watch(model, log_graph=True)` stores it.")
        return
    try:
        doc = parse(text)
    except GraphFormatError as exc:
        st.warning(str(exc))
        return
    if not doc.models:
        st.info("The stored model graph lists no models.")
    for model in doc.models:
        if len(doc.models) > 1:
            st.markdown(f"**{md(model.prefix or 'model')}**")
        st.caption(describe(model))
        st.graphviz_chart(to_dot(model))
    with st.expander("Graph JSON"):
        st.json(text, expanded=False)


def _json(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


main()
