"""Metric panels: what the Charts page and a run's page draw for a set of runs and metric keys.

The user's own metrics come first, in sections by prefix (`train/`, `val/`, ...); watch()'s
`grad_norm/*` and `param_norm/*` have a section of their own, closed until asked for. Keys come a
page at a time with a "show more" button, never silently capped. One legend serves every chart of
the page (`legend`), listing only the runs (or groups) that have points. A key's x-axis is the
page's choice, or with "auto" the `step_metric` its `define_metric` names (else the step).

Example:
    options = PanelOptions(x="auto", columns=2)
    draw(project, run_ids, runs, keys, options, definitions, key_prefix="charts")
"""

from __future__ import annotations

import fnmatch
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from dashboard.lines import X_MODES, colors, group_frame, line_chart, metric_x, nonfinite_summary, prepare
from dashboard.state import md, read, run_names

WATCH_PREFIXES = ("grad_norm/", "param_norm/")
PAGE_SIZE = 24  # charts per "page"; "show more" adds as many again
# About one bucket per horizontal pixel of a chart at the chosen number of columns.
BUCKETS = {1: 1200, 2: 700, 3: 450}
CHART_HEIGHT = 260
# Sections in the order a training script's keys usually matter.
SECTION_ORDER = ("train", "val", "valid", "validation", "eval", "test")


@dataclass(frozen=True)
class PanelOptions:
    x: str = "auto"  # auto, step, wall, relative, or "metric:<key>"
    smoothing: float = 0.0
    log_y: bool = False
    band: bool = True
    columns: int = 2
    group: str = ""  # "", "group", "job_type" or "config.<key>"


def split_watch(keys: Sequence[str]) -> tuple[list[str], list[str]]:
    """(the user's keys, watch()'s norm keys)."""
    watch = [k for k in keys if k.startswith(WATCH_PREFIXES)]
    return [k for k in keys if not k.startswith(WATCH_PREFIXES)], watch


def sections(keys: Sequence[str]) -> dict[str, list[str]]:
    """Keys by the prefix before their first '/': ungrouped keys first, then train, val, test..., then
    the others alphabetically."""
    def rank(key: str) -> tuple:
        prefix = key.split("/", 1)[0].lower() if "/" in key else ""
        known = SECTION_ORDER.index(prefix) if prefix in SECTION_ORDER else len(SECTION_ORDER)
        return ("/" in key, known, prefix, key)

    found: dict[str, list[str]] = {}
    for key in sorted(keys, key=rank):
        found.setdefault(key.split("/", 1)[0] if "/" in key else "", []).append(key)
    return found


def step_metric(key: str, definitions: dict[str, dict]) -> str:
    """The step_metric `define_metric` gave `key` (an exact name beats a glob); '' when none."""
    exact = definitions.get(key)
    if isinstance(exact, dict) and exact.get("step_metric"):
        return str(exact["step_metric"])
    for name, definition in definitions.items():
        if name != key and fnmatch.fnmatchcase(key, name) and definition.get("step_metric"):
            return str(definition["step_metric"])
    return ""


def x_of(key: str, option: str, definitions: dict[str, dict]) -> str:
    """What `key` is drawn against: step, wall, relative or metric:<key>."""
    if option == "auto":
        metric = step_metric(key, definitions)
        return f"metric:{metric}" if metric and metric != key else "step"
    return option


def group_labels(runs: pd.DataFrame, by: str) -> dict[str, str]:
    """run_id -> its group's label (`group: mlp`, `lr: 0.1`) when grouping by `by`."""
    labels = {}
    for row in runs.to_dict("records"):
        if by in ("group", "job_type"):
            value = row.get(by) or "(none)"
        else:
            try:
                config = json.loads(row.get("config") or "{}")
            except ValueError:
                config = {}
            raw = config.get(by.removeprefix("config.")) if isinstance(config, dict) else None
            value = "(none)" if raw is None else (raw if isinstance(raw, str) else json.dumps(raw))
        labels[row["run_id"]] = f"{by.removeprefix('config.')}: {value}"
    return labels


def run_url(project: str, run_id: str) -> str:
    return f"run?{urlencode({'project': project, 'run': run_id})}"


def legend(entries: Sequence[str], domain: Sequence[str], links: dict[str, str] | None = None) -> None:
    """One legend for every chart of the page: a coloured mark and a name (a link to its run page)."""
    palette = dict(zip(domain, colors(domain)))
    chips = []
    for name in entries:
        label = html.escape(name)
        if links and name in links:
            label = f'<a href="{html.escape(links[name])}" target="_self">{label}</a>'
        chips.append(f'<span class="pulse-chip"><span class="pulse-swatch" style="background:{palette[name]}">'
                     f"</span>{label}</span>")
    st.html(f'<div class="pulse-legend">{"".join(chips)}</div>')


def draw(project: str, run_ids: list[str], runs: pd.DataFrame, keys: list[str], options: PanelOptions,
         definitions: dict[str, dict], key_prefix: str, live: bool = False) -> None:
    """The panels of `keys` (a page of them, more on request) for `run_ids`, one legend on top."""
    keys = [key for section_keys in sections(keys).values() for key in section_keys]  # train/ before probe/...
    shown_key = f"{key_prefix}:shown"
    limit = st.session_state.get(shown_key, PAGE_SIZE)
    page = keys[:limit]
    axes = {key: x_of(key, options.x, definitions) for key in page}
    x_keys = {axis.removeprefix("metric:") for axis in axes.values() if axis.startswith("metric:")}
    wanted = tuple(dict.fromkeys([*page, *sorted(x_keys)]))
    points = read("series", project, tuple(run_ids), wanted, BUCKETS[options.columns], live=live).to_pandas()
    names = run_names(runs)
    starts = dict(zip(runs["run_id"], runs["created_at"]))
    groups = group_labels(runs, options.group) if options.group else {}
    if groups:
        domain = list(dict.fromkeys(groups[r] for r in run_ids if r in groups))
        with_data = list(dict.fromkeys(groups[r] for r in points["run_id"].unique() if r in groups))
        links = None
    else:
        domain = [names[r] for r in run_ids if r in names]
        with_data = [names[r] for r in run_ids if r in names and r in set(points["run_id"])]
        links = {names[r]: run_url(project, r) for r in run_ids if r in names}
    if with_data:
        legend(with_data, domain, links)
    silent = [names[r] for r in run_ids if r in names and r not in set(points["run_id"])]
    if silent and not groups:
        st.caption(f"No points yet for these keys: {md(', '.join(silent))}")
    for section, section_keys in sections(page).items():
        st.subheader(section or "Metrics", anchor=False, divider="gray")
        grid = st.columns(options.columns)
        for i, key in enumerate(section_keys):
            with grid[i % options.columns]:
                _panel(key, axes[key], points, names, starts, groups, domain, options)
    if len(keys) > limit:
        st.caption(f"Showing {limit} of {len(keys)} metrics.")
        if st.button(f"Show {min(PAGE_SIZE, len(keys) - limit)} more", key=f"{key_prefix}:more"):
            st.session_state[shown_key] = limit + PAGE_SIZE
            st.rerun()


def _panel(key: str, axis: str, points: pd.DataFrame, names: dict[str, str], starts: dict, groups: dict[str, str],
           domain: list[str], options: PanelOptions) -> None:
    rows = points[points["key"] == key].reset_index(drop=True)
    if rows.empty:
        st.caption(f"{key}: no points yet")
        return
    series = rows["run_id"].map(names).fillna(rows["run_id"])
    if axis.startswith("metric:"):
        x_key = axis.removeprefix("metric:")
        values = metric_x(rows, points[points["key"] == x_key])
        frame, x_title = prepare(rows, series, "metric", smoothing=options.smoothing, log_y=options.log_y,
                                 x_values=values, x_title=x_key)
        x_mode = "metric"
    else:
        frame, x_title = prepare(rows, series, axis, rows["run_id"].map(starts), options.smoothing, options.log_y)
        x_mode = axis
    if frame.empty:
        st.caption(f"{key}: nothing to draw against {x_title}")
        return
    if groups:
        frame = group_frame(frame, {names.get(r, r): g for r, g in groups.items()}, options.smoothing)
    chart = line_chart(frame, key, domain, x_title, x_mode, options.log_y, options.band, height=CHART_HEIGHT,
                       smoothed=options.smoothing > 0, legend=False)
    st.altair_chart(chart, width="stretch")
    flagged = nonfinite_summary(frame)
    if flagged:
        st.caption(f":red[▼ non-finite values: {md(flagged)}]")


def x_options(keys: Sequence[str]) -> dict[str, str]:
    """The x-axis choices: auto (step, or the define_metric step_metric), step, times, any metric."""
    return {"auto": "Step (or define_metric's step_metric)", **X_MODES, **{f"metric:{k}": k for k in keys}}
