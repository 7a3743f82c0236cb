"""/media: a run's logged images per key, with a step slider and captions."""

from __future__ import annotations

import streamlit as st

from dashboard.blobs import BlobUnavailable, read_blob
from dashboard.state import md, project_picker, read, refresh_button, run_picker, to_url, url_key

COLUMNS = 4
IMAGE_KINDS = ("image",)


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    run_ids = run_picker(project, multiple=False)
    st.header("Media", anchor=False)
    if not run_ids:
        st.info("Pick a run in the sidebar.")
        return
    run_id = run_ids[0]
    keys = read("media_keys", project, run_id).to_pandas()
    if keys.empty:
        st.info("This run logged no media. Log images with `emitter.log({\"samples\": emitter.Image(array)})`.")
        return
    options = list(keys["key"])
    chosen = st.multiselect("Keys", options, key=url_key("keys", options[:4], options))
    to_url("keys", chosen, options[:4])
    for key in chosen:
        row = keys[keys["key"] == key].iloc[0]
        _key(project, run_id, key, sorted(int(s) for s in row["steps"]), row["kind"])


def _key(project: str, run_id: str, key: str, steps: list[int], kind: str) -> None:
    st.subheader(key, anchor=False, divider="gray")
    if len(steps) > 1:
        step = st.select_slider(f"Step of {key}", steps, value=steps[-1], key=f"step:{key}",
                                label_visibility="collapsed")
        st.caption(f"step {step:,} · {len(steps)} steps logged ({steps[0]:,}–{steps[-1]:,})")
    else:
        step = steps[0]
        st.caption(f"step {step:,}")
    items = read("media", project, run_id, key, step).to_pandas()
    grid = st.columns(COLUMNS)
    unreadable = []
    for i, item in enumerate(items.itertuples()):
        with grid[i % COLUMNS]:
            if item.kind not in IMAGE_KINDS and not item.mime.startswith("image/"):
                st.caption(f"{item.kind} ({item.mime}) · {item.caption}")
                continue
            try:
                data = read_blob(item.uri, item.sha256)
            except BlobUnavailable as exc:
                unreadable.append(str(exc))
                st.caption(f"🖼 {item.width}×{item.height} {md(item.caption)}")
                continue
            st.image(data, caption=item.caption or None, width="stretch", output_format="PNG")
    if unreadable:
        st.warning(f"{len(unreadable)} image(s) shown as metadata only: {unreadable[0]}")


main()
