"""/media: what the selected runs logged as media, key by key, side by side at one step.

Every key (a page at a time) gets a step slider; each run shows what it logged under the key at
that step (or its last step before). A user's own `emitter.Histogram`s are here too, whatever
watch() logged beside them. Images are drawn by the function RENDERERS names for them; every other
kind (Table, Audio, Video, Html, Object3D, plots: pulse/media_schema.py) by dashboard.media_render.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.blobs import BlobUnavailable, read_blob
from dashboard.media_render import render_media
from dashboard.state import md, project_picker, read, refresh_button, run_names, run_picker
from pulse.media_schema import CELL_KEY_PREFIX

KEYS_PER_PAGE = 6
MAX_RUNS_SIDE_BY_SIDE = 4
ITEM_COLUMNS = 3


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    run_ids = run_picker(project, default_count=1)
    st.header("Media", anchor=False)
    if not run_ids:
        st.info("Pick runs in the sidebar.")
        return
    runs = read("runs", project, tuple(run_ids)).to_pandas()
    names = run_names(runs)
    media = read("media_keys", project, tuple(run_ids)).to_pandas()
    media = media[~media["key"].str.startswith(CELL_KEY_PREFIX)]  # drawn inside their tables
    histograms = read("user_histogram_keys", project, tuple(run_ids)).to_pandas()
    entries = [("media", row) for row in media.to_dict("records")] + \
        [("histogram", row) for row in histograms.to_dict("records")]
    entries.sort(key=lambda entry: entry[1]["key"])
    if not entries:
        st.info("These runs logged no media. Log images with `emitter.log({\"samples\": emitter.Image(array)})`, "
                "histograms with `emitter.Histogram(values)`.")
        return
    if len(run_ids) > MAX_RUNS_SIDE_BY_SIDE:
        st.caption(f"Comparing the first {MAX_RUNS_SIDE_BY_SIDE} of the {len(run_ids)} selected runs.")
    shown = st.session_state.get("media:shown", KEYS_PER_PAGE)
    compared = run_ids[:MAX_RUNS_SIDE_BY_SIDE]
    for kind, row in entries[:shown]:
        steps = sorted(int(s) for s in row["steps"])
        step = _step(row["key"], steps)
        if kind == "media":
            _media_key(project, compared, names, row["key"], step)
        else:
            _histogram_key(project, compared, names, row["key"], step)
    if len(entries) > shown:
        st.caption(f"Showing {shown} of {len(entries)} keys.")
        if st.button(f"Show {min(KEYS_PER_PAGE, len(entries) - shown)} more keys"):
            st.session_state["media:shown"] = shown + KEYS_PER_PAGE
            st.rerun()


def _step(key: str, steps: list[int]) -> int:
    st.subheader(key, anchor=False, divider="gray")
    if len(steps) == 1:
        st.caption(f"step {steps[0]:,}")
        return steps[0]
    step = st.select_slider(f"Step of {key}", steps, value=steps[-1], key=f"step:{key}",
                            label_visibility="collapsed")
    st.caption(f"step {step:,} · {len(steps)} steps logged ({steps[0]:,}–{steps[-1]:,})")
    return step


def _media_key(project: str, run_ids: list[str], names: dict[str, str], key: str, step: int) -> None:
    items = read("media_at", project, tuple(run_ids), key, step).to_pandas()
    columns = st.columns(len(run_ids)) if len(run_ids) > 1 else [st.container()]
    unreadable: list[str] = []
    for column, run_id in zip(columns, run_ids):
        mine = items[items["run_id"] == run_id]
        with column:
            if len(run_ids) > 1:
                at = f" · step {int(mine['step'].iloc[0]):,}" if not mine.empty and mine["step"].iloc[0] != step else ""
                st.markdown(f"**{md(names.get(run_id, run_id))}**{at}")
            if mine.empty:
                st.caption("nothing logged under this key by this step")
                continue
            grid = st.columns(min(ITEM_COLUMNS if len(run_ids) == 1 else 1, len(mine)) or 1)
            for i, item in enumerate(mine.itertuples()):
                with grid[i % len(grid)]:
                    RENDERERS.get(item.kind, partial(render_media, project, key))(item, unreadable)
    if unreadable:
        st.warning(f"{len(unreadable)} item(s) shown as metadata only: {unreadable[0]}")


def _image(item, unreadable: list[str]) -> None:
    try:
        data = read_blob(item.uri, item.sha256)
    except BlobUnavailable as exc:
        unreadable.append(str(exc))
        st.caption(f"🖼 {item.width}×{item.height} {md(item.caption)}")
        return
    st.image(data, caption=item.caption or None, width="stretch", output_format="PNG")


def _metadata(item, unreadable: list[str]) -> None:
    """A kind this page does not draw yet: what it is."""
    size = f" · {item.width}×{item.height}" if item.width else ""
    st.caption(f"{item.kind} ({item.mime}){size} · {md(item.caption)}")


# kind -> how one item of it is drawn (media rows' `kind`, pulse/media_schema.py KINDS).
RENDERERS: dict[str, Callable] = {"image": _image}


def _histogram_key(project: str, run_ids: list[str], names: dict[str, str], key: str, step: int) -> None:
    rows = read("histograms_at", project, tuple(run_ids), key, step).to_pandas()
    if rows.empty:
        st.caption("nothing logged under this key by this step")
        return
    bars = []
    for row in rows.itertuples():
        edges, counts = list(row.edges), list(row.counts)
        for low, high, count in zip(edges[:-1], edges[1:], counts):
            bars.append({"run": names.get(row.run_id, row.run_id), "low": low, "high": high, "count": count,
                         "step": int(row.at_step)})
    frame = pd.DataFrame(bars)
    chart = alt.Chart(frame).mark_bar(opacity=0.6, binSpacing=0).encode(
        x=alt.X("low:Q", title=key, bin="binned"), x2="high:Q", y=alt.Y("count:Q", stack=None),
        color=alt.Color("run:N", legend=alt.Legend(orient="bottom", title=None) if len(run_ids) > 1 else None),
        tooltip=["run:N", "step:Q", alt.Tooltip("low:Q", format=".4g"), alt.Tooltip("high:Q", format=".4g"),
                 "count:Q"])
    st.altair_chart(chart.properties(height=220), width="stretch")


main()
