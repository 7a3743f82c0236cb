"""/sweeps: every sweep with its progress; per sweep the best runs, parallel coordinates, objective vs
each parameter, parameter importance and the objective over time."""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from dashboard.edits import EditError
from dashboard.importance import importance
from dashboard.runs_table import LINK_NAME, run_link
from dashboard.state import editor, may_write, md, param, project_picker, read, refresh_button, reread, set_params
from dashboard.sweep import (
    STOPPED,
    best_so_far,
    is_log,
    metric_names,
    objective_over_time,
    parallel_coordinates,
    parse_json,
    planned_trials,
    scatter,
    state_legend,
    sweep_parameters,
    trials,
    varying,
)
from dashboard.sweep import importance_chart as importance_bars

BEST_RUNS = 10
MIN_TRIALS_FOR_IMPORTANCE = 5
LIVE_REFRESH_S = 5
GOALS = ("minimize", "maximize")


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    st.header("Sweeps", anchor=False)
    sweeps = read("sweeps", project).to_pandas()
    if sweeps.empty:
        st.info("No sweeps in this project. Start one with `pulse sweep sweep.yaml`, then `pulse agent <ID>`.")
        return
    sweeps["config_json"] = [parse_json(text) for text in sweeps["config"]]
    _overview(sweeps)
    ids = list(sweeps["sweep_id"])
    names = {sid: _sweep_name(sid, cfg) for sid, cfg in zip(sweeps["sweep_id"], sweeps["config_json"])}
    wanted = param("sweep")
    chosen = st.selectbox("Sweep", ids, index=ids.index(wanted) if wanted in ids else 0, format_func=names.get)
    set_params(sweep=chosen)
    row = sweeps[sweeps["sweep_id"] == chosen].iloc[0]
    live = bool(row["running"])
    if may_write(project) and row["state"] == "running":  # a registered sweep the controller still runs
        _stop_buttons(chosen)
    st.fragment(run_every=LIVE_REFRESH_S if live else None)(_sweep)(project, chosen, row["config_json"], live)


def _overview(sweeps: pd.DataFrame) -> None:
    done = sweeps["finished"] + sweeps["stopped"] + sweeps["failed"]
    planned = [planned_trials(cfg) or max(trials, 1) for cfg, trials in zip(sweeps["config_json"], sweeps["trials"])]
    table = pd.DataFrame({
        "sweep": [_sweep_name(s, c) for s, c in zip(sweeps["sweep_id"], sweeps["config_json"])],
        "state": [state or ("running" if running else "—") for state, running in zip(sweeps["state"],
                                                                                      sweeps["running"])],
        "method": [c.get("method", "—") for c in sweeps["config_json"]],
        "metric": [_metric(c)[0] or "—" for c in sweeps["config_json"]],
        "progress": [min(1.0, d / p) for d, p in zip(done, planned)],
        "trials": [f"{d} / {p}" for d, p in zip(done, planned)],
        "running": sweeps["running"], "finished": sweeps["finished"], "stopped early": sweeps["stopped"],
        "failed": sweeps["failed"],
        "created": pd.to_datetime([c if c.year > 1970 else f for c, f in zip(sweeps["created_at"],
                                                                             sweeps["first_run"])]),
    })
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "trials": st.column_config.TextColumn("done / planned"),
        "created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm")})


def _sweep(project: str, sweep_id: str, config: dict, live: bool) -> None:
    runs = read("sweep_runs", project, sweep_id, live=live).to_pandas()
    if runs.empty:
        st.info("This sweep has no trials yet.")
        return
    metric, goal = _metric(config)
    specs = sweep_parameters(config)
    configs = [parse_json(text) for text in runs["config"]]
    if not metric or not config:
        st.caption("This sweep's own config is not stored; its parameters are the config entries that "
                   "differ between its runs.")
        metric, goal = _pick_metric(runs, metric, goal)
        if not metric:
            st.info("The trials have no numeric summary to compare yet.")
            return
    params = [p for p, spec in specs.items() if "value" not in spec] if specs else varying(configs)
    table = trials(runs, params, metric, goal)
    _headline(table, metric, goal)
    scored = table[table["objective"].notna()]
    if scored.empty:
        st.info(f"No trial has reported `{md(metric)}` yet.")
        return
    _best_runs(project, scored, params, metric, goal)
    log_params = {p for p in params if is_log(table[p], specs.get(p))}
    st.subheader("Parallel coordinates", anchor=False)
    st.altair_chart(parallel_coordinates(scored, params, log_params, metric, goal), width="stretch")
    _importance(scored, params, metric)
    st.subheader(f"{metric} against each parameter", anchor=False)
    grid = st.columns(3)
    for i, p in enumerate(params):
        with grid[i % 3]:
            st.altair_chart(scatter(scored, p, p in log_params, metric), width="stretch")
    st.caption(state_legend())
    st.subheader(f"{metric} over time", anchor=False)
    st.altair_chart(objective_over_time(table, metric, goal), width="stretch")


def _stop_buttons(sweep_id: str) -> None:
    """Stop the sweep (no new trials) or cancel it (running trials are stopped too) through the ingest."""
    stop_col, cancel_col, _ = st.columns([2, 3, 5])
    stop = stop_col.button("Stop sweep", icon=":material/stop_circle:", help="No new trials; running trials finish")
    cancel = cancel_col.button("Stop sweep and its trials", icon=":material/cancel:",
                               help="No new trials, and the running ones are stopped (they end stopped early)")
    if not (stop or cancel):
        return
    try:
        editor().stop_sweep(sweep_id, cancel=cancel)
    except EditError as exc:
        st.error(f"The ingest refused: {md(str(exc))}")
        return
    reread()
    st.rerun()


def _headline(table: pd.DataFrame, metric: str, goal: str) -> None:
    states = table["state"].value_counts()
    best = best_so_far(table, goal).dropna()
    # The best value gets room of its own: in a sixth of the page it was cut to "0.033…".
    counts, best_col = st.columns([5, 2])
    cells = counts.columns(5)
    cells[0].metric("Trials", len(table))
    cells[1].metric("Finished", int(states.get("finished", 0)))
    cells[2].metric("Running", int(states.get("running", 0)))
    cells[3].metric(STOPPED.capitalize(), int(states.get(STOPPED, 0)))
    cells[4].metric("Failed", int(states.get("failed", 0) + states.get("crashed", 0)))
    best_col.metric(f"Best {metric} ({goal[:3]})", f"{best.iloc[-1]:.5g}" if not best.empty else "—",
                    help=f"The {'lowest' if goal != 'maximize' else 'highest'} {metric} of any trial")


def _best_runs(project: str, scored: pd.DataFrame, params: list[str], metric: str, goal: str) -> None:
    st.subheader("Best runs", anchor=False)
    best = scored.sort_values("objective", ascending=goal != "maximize").head(BEST_RUNS)
    table = best[["name", "state", "objective", *params]].rename(columns={"objective": metric})
    table["name"] = [run_link(project, r, n) for r, n in zip(best["run_id"], best["name"])]
    table.insert(1, "charts", [f"charts?{urlencode({'project': project, 'run': r})}" for r in best["run_id"]])
    numbers = {p: st.column_config.NumberColumn(p, format="%.4g") for p in params
               if pd.api.types.is_float_dtype(table[p])}
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        **numbers, "name": st.column_config.LinkColumn("run", display_text=LINK_NAME),
        "charts": st.column_config.LinkColumn("charts", display_text="open ↗", width="small"),
        metric: st.column_config.NumberColumn(metric, format="%.5g")})


def _importance(scored: pd.DataFrame, params: list[str], metric: str) -> None:
    st.subheader("Parameter importance", anchor=False)
    if len(scored) < MIN_TRIALS_FOR_IMPORTANCE or not params:
        st.caption(f"Needs at least {MIN_TRIALS_FOR_IMPORTANCE} trials with `{md(metric)}`.")
        return
    table = importance(scored[params], scored["objective"])
    st.altair_chart(importance_bars(table), width="content")
    st.caption("Importance: the share of the objective's variance a random forest explains by splitting on the "
               "parameter (sees sweet spots and interactions, not direction). Rank correlation: whether "
               f"{md(metric)} rises (red) or falls (green) as the parameter grows.")


def _pick_metric(runs: pd.DataFrame, metric: str, goal: str) -> tuple[str, str]:
    candidates = metric_names([parse_json(text) for text in runs["summary"]])
    if not candidates:
        return "", goal
    metric_col, goal_col, _ = st.columns([3, 3, 4])
    metric = metric_col.selectbox("Objective", candidates, index=candidates.index(metric) if metric in candidates
                                  else 0)
    goal = goal_col.segmented_control("Goal", GOALS, default=goal if goal in GOALS else "minimize") or "minimize"
    return metric, goal


def _metric(config: dict) -> tuple[str, str]:
    metric = config.get("metric") if isinstance(config, dict) else None
    if isinstance(metric, dict) and metric.get("name"):
        return str(metric["name"]), str(metric.get("goal") or "minimize")
    return "", "minimize"


def _sweep_name(sweep_id: str, config: dict) -> str:
    name = config.get("name") if isinstance(config, dict) else None
    return f"{name} ({sweep_id})" if name else sweep_id


main()
