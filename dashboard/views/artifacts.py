"""/artifacts?project=P&artifact=NAME&version=vN: a project's artifacts, one version at a time.

The project's artifacts with their latest version; for the chosen one its versions and aliases; for
the chosen version its digest, size, description, metadata, files (size, sha256, references) with a
download button, and its lineage: the runs that logged and used it, and what else those runs logged
and used, as a graph and as links.
"""

from __future__ import annotations

import json
from functools import partial
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from dashboard.artifacts import (
    MAX_FILES,
    lineage_dot,
    producers_and_consumers,
    read_cached,
    version_label,
)
from dashboard.downloads import MAX_DOWNLOAD_BYTES, download_blob
from dashboard.runs_table import run_link
from dashboard.state import md, param, project_picker, refresh_button, session_key, set_params, source
from pulse.artifact_manifest import parse_version


def main() -> None:
    project = project_picker()
    refresh_button()
    if project is None:
        return
    st.header("Artifacts", anchor=False)
    listing = read_cached("artifacts", project).to_pandas()
    if listing.empty:
        st.info("No artifacts in this project. Log one with `artifact = emitter.Artifact(\"data\", type=\"dataset\")`, "
                "`artifact.add_file(path)`, `run.log_artifact(artifact)`.")
        return
    names = list(listing["name"])
    wanted = param("artifact")
    name = st.selectbox("Artifact", names, index=names.index(wanted) if wanted in names else 0,
                        format_func=lambda n: f"{n} ({listing.set_index('name').at[n, 'type']})")
    if name != wanted:
        set_params(artifact=name, version=None)
    with st.expander(f"All {len(listing)} artifacts of {md(project)}", expanded=not wanted):
        _overview(project, listing)
    versions = read_cached("artifact_versions", project, name).to_pylist()
    if not versions:
        st.info("This artifact has no committed version yet.")
        return
    by_number = {v["version"]: v for v in versions}
    asked = parse_version(param("version"))
    number = st.selectbox("Version", list(by_number), index=list(by_number).index(asked) if asked in by_number else 0,
                          format_func=lambda n: _version_option(by_number[n]))
    set_params(version=f"v{number}")
    version = by_number[number]
    _version(project, name, version)
    _files(project, name, version)
    _lineage(project, name, number)
    _versions(project, name, versions)


def _overview(project: str, listing: pd.DataFrame) -> None:
    table = pd.DataFrame({
        "artifact": ["artifacts?" + urlencode({"project": project, "artifact": n}) + f"#{n}" for n in listing["name"]],
        "type": listing["type"], "versions": listing["versions"],
        "latest": [f"v{v}" for v in listing["latest"]], "size": [_size(s) for s in listing["size"]],
        "files": listing["files"], "updated": listing["updated_at"], "description": listing["description"]})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "artifact": st.column_config.LinkColumn("artifact", display_text=r"#(.*)$"),
        "updated": st.column_config.DatetimeColumn("updated (UTC)", format="YYYY-MM-DD HH:mm")})


def _version_option(version: dict) -> str:
    aliases = ", ".join(version["aliases"])
    return f"v{version['version']}" + (f" · {aliases}" if aliases else "")


def _version(project: str, name: str, version: dict) -> None:
    st.subheader(version_label(name, version["version"]), anchor=False, divider="gray")
    badges = " ".join(f":blue-badge[{md(alias)}]" for alias in version["aliases"])
    st.markdown(f"{badges} :gray-badge[{md(version['type'])}]" if badges else f":gray-badge[{md(version['type'])}]")
    producer = version["run_name"] or version["created_by_run"]
    by = f"[{md(producer)}]({run_link(project, version['created_by_run'], producer).partition('#')[0]})" \
        if version["created_by_run"] else "no run"
    st.markdown(f"{_size(version['size'])} in {version['files']:,} file(s) · logged "
                f"{version['created_at']:%Y-%m-%d %H:%M:%S} UTC by {by}")
    st.markdown(f"Digest `{version['digest']}`")
    if version["description"]:
        st.markdown(md(version["description"]))
    metadata = _json(version["metadata"])
    st.markdown("**Metadata**")
    if metadata:
        st.json(metadata, expanded=2)
    else:
        st.caption("none")


def _files(project: str, name: str, version: dict) -> None:
    st.subheader("Files", anchor=False)
    files = read_cached("artifact_files", project, name, version["version"]).to_pandas()
    if files.empty:
        st.caption("This version has no files.")
        return
    table = pd.DataFrame({"path": files["path"], "size": [_size(s) for s in files["size"]], "bytes": files["size"],
                          "sha256": files["sha256"], "reference": files["ref_uri"]})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "bytes": st.column_config.NumberColumn("bytes", format="%d")})
    if version["files"] > len(files):
        st.caption(f"The first {MAX_FILES:,} of {version['files']:,} files.")
    stored = files[files["sha256"] != ""]
    if stored.empty:
        st.caption("Every file is a reference: download it from where it lies.")
        return
    paths = list(stored["path"])
    path = st.selectbox("File to download", paths, key=f"file:{name}:{version['version']}") if len(paths) > 1 \
        else paths[0]
    row = stored[stored["path"] == path].iloc[0]
    size, sha256 = int(row["size"]), str(row["sha256"])
    if size > MAX_DOWNLOAD_BYTES:
        st.caption(f"{md(path)} is {_size(size)}: download it with "
                   f"`emitter.Api().artifact(\"{md(project)}/{md(name)}:v{version['version']}\").download()`.")
        return
    # The bytes are fetched when the button is pressed (on a Streamlit worker thread, not while the page
    # draws), with this session's key; a refusal shows as the browser's failed download and in the log.
    data = partial(download_blob, source().server or "", session_key(), project, sha256, size)
    st.download_button(f"Download {path.rsplit('/', 1)[-1]} ({_size(size)})", data, file_name=path.rsplit("/", 1)[-1],
                       mime="application/octet-stream", icon=":material/download:", on_click="ignore",
                       key=f"download:{name}:{version['version']}:{path}")


def _lineage(project: str, name: str, number: int) -> None:
    st.subheader("Lineage", anchor=False)
    rows = read_cached("lineage", project, name).to_pylist()
    producers, consumers = producers_and_consumers(rows, project, name, number)
    st.markdown(f"Logged by {_run_links(producers) or 'no run'} · used by {_run_links(consumers) or 'no run'}")
    if rows:
        st.graphviz_chart(lineage_dot(rows, (project, name, number), page_project=project), width="content")
        st.caption("Runs (ellipses) point at the versions they logged; versions (boxes) at the runs that used them. "
                   "Click one to open it.")


def _run_links(rows: list[dict]) -> str:
    return ", ".join(f"[{md(row['run_name'] or row['run_id'])}]"
                     f"({run_link(row['run_project'], row['run_id'], '').partition('#')[0]})" for row in rows)


def _versions(project: str, name: str, versions: list[dict]) -> None:
    st.subheader("Versions", anchor=False)
    table = pd.DataFrame({
        "version": ["artifacts?" + urlencode({"project": project, "artifact": name, "version": f"v{v['version']}"})
                    + f"#v{v['version']}" for v in versions],
        "aliases": [", ".join(v["aliases"]) for v in versions],
        "size": [_size(v["size"]) for v in versions], "files": [v["files"] for v in versions],
        "logged by": [v["run_name"] or v["created_by_run"] for v in versions],
        "created": [v["created_at"] for v in versions], "digest": [v["digest"] for v in versions]})
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "version": st.column_config.LinkColumn("version", display_text=r"#(.*)$"),
        "created": st.column_config.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm:ss")})


def _json(text: str) -> dict | list | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return {"(not JSON)": text}
    return value or None


def _size(n: int) -> str:
    if n < 1024:
        return f"{int(n):,} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:,.1f} {unit}"
    raise AssertionError("unreachable")


main()
