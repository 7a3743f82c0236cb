"""The Artifacts page's reads and its lineage graph.

Reads go through the session's `Source` (the ingest's Query RPC with the session's key, or ClickHouse
directly), with the SQL of `dashboard.queries` and bound parameters only; answers are cached per reader
identity and refresh token as `dashboard.state.fetch` caches the other pages'.

The lineage graph is Graphviz DOT text (drawn in the browser by `st.graphviz_chart`): artifact
versions are boxes, runs are ellipses, a run points at the versions it logged and a version at the
runs that used it, so `dataset:v0 -> train -> model:v1 -> eval` reads left to right.

Example:
    versions = read_cached("artifact_versions", "mnist", "digits")
    st.graphviz_chart(lineage_dot(read_cached("lineage", "mnist", "digits"), ("mnist", "digits", 1)))
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import pyarrow as pa
import streamlit as st

from dashboard import queries
from dashboard.data import DataError, Source
from dashboard.state import IDLE_S, SESSION_IDENTITY, source

MAX_FILES = 10_000  # files listed per version; the rest are counted
MAX_LINEAGE_ROWS = 2_000
MAX_NODES = 120  # a graph larger than this is unreadable; the lists below it name everything


# -- reads --------------------------------------------------------------------------------------------


def _sql(reader: Source, sql: str, parameters: dict[str, Any]) -> pa.Table:
    # Source._run is the one path that binds parameters and turns any driver's error into a DataError;
    # these reads are the Artifacts page's own, next to their only caller.
    return reader._run(sql, parameters)


def artifacts(reader: Source, project: str) -> pa.Table:
    """name, type, versions, latest, size, files, description, updated_at of every artifact of `project`."""
    return _sql(reader, queries.ARTIFACTS, {"project": project})


def artifact_versions(reader: Source, project: str, name: str) -> pa.Table:
    """version, type, digest, description, metadata (JSON text), size, files, created_by_run, run_name,
    created_at, aliases of every version of one artifact, newest first."""
    return _sql(reader, queries.ARTIFACT_VERSIONS, {"project": project, "name": name})


def artifact_files(reader: Source, project: str, name: str, version: int) -> pa.Table:
    """path, sha256, size, ref_uri, ref_digest of one version's files (at most MAX_FILES), by path."""
    return _sql(reader, queries.ARTIFACT_FILES, {"project": project, "name": name, "version": int(version),
                                                 "limit": MAX_FILES})


def lineage(reader: Source, project: str, name: str) -> pa.Table:
    """project, name, version, direction, run_project, run_id, run_name, state, type: the uses and logs
    of one artifact's versions, and of the other artifacts the same runs used and logged."""
    return _sql(reader, queries.ARTIFACT_LINEAGE, {"project": project, "name": name, "limit": MAX_LINEAGE_ROWS})


def media_cells(reader: Source, project: str, run_id: str, key: str, shas: Sequence[str]) -> pa.Table:
    """sha, uri, mime of the media cells `shas` of the table logged under `key` (their cell key)."""
    return _sql(reader, queries.MEDIA_CELLS, {"project": project, "run_id": run_id, "key": key,
                                              "shas": list(shas) or [""]})


READS = {"artifacts": artifacts, "artifact_versions": artifact_versions, "artifact_files": artifact_files,
         "lineage": lineage, "media_cells": media_cells}


@st.cache_data(ttl=600, max_entries=500, show_spinner=False)
def _cached(address: str, identity: str, what: str, args: tuple, token: tuple, _reader: Source) -> pa.Table:
    return READS[what](_reader, *args)


def read_cached(what: str, *args: Any) -> pa.Table:
    """`READS[what](source(), *args)`, cached as `state.fetch` caches (per key, until Refresh or IDLE_S);
    a DataError stops the page with the store's message."""
    reader = source()
    token = (st.session_state.get("refresh", 0), int(time.time() // IDLE_S))
    try:
        return _cached(reader.address, st.session_state.get(SESSION_IDENTITY, ""), what, args, token,
                       _reader=reader)
    except DataError as exc:
        st.error(f"The store could not answer: {exc}")
        st.stop()


# -- the lineage graph --------------------------------------------------------------------------------


def version_label(name: str, version: int) -> str:
    return f"{name}:v{version}"


def lineage_dot(rows: Sequence[dict], focus: tuple[str, str, int] | None = None, page_project: str = "") -> str:
    """Graphviz DOT of `rows` (the `lineage` read): runs -> versions they logged, versions -> runs that
    used them. `focus` (project, name, version) is drawn filled; artifacts of another project than
    `page_project` are named with their project. Nodes link to their run or artifact page."""
    lines = ["digraph lineage {", '  rankdir="LR";', '  bgcolor="transparent";',
             '  node [fontname="sans-serif", fontsize=11];', '  edge [color="#888888"];']
    nodes: dict[str, str] = {}
    edges: list[str] = []
    for row in rows:
        version_id = _id("v", row["project"], row["name"], str(row["version"]))
        run_id = _id("r", row["run_project"], row["run_id"])
        if version_id not in nodes:
            label = version_label(row["name"], row["version"])
            if page_project and row["project"] != page_project:
                label = f"{row['project']}/{label}"
            focused = focus == (row["project"], row["name"], row["version"])
            style = 'style="filled,rounded", fillcolor="#ffe9b3"' if focused else 'style="rounded"'
            link = "artifacts?" + urlencode({"project": row["project"], "artifact": row["name"],
                                             "version": f"v{row['version']}"})
            nodes[version_id] = (f'  {version_id} [shape=box, {style}, label="{_quote(label)}\\n'
                                 f'{_quote(row["type"] or "")}", URL="{_quote(link)}", target="_top"];')
        if run_id not in nodes:
            name = row["run_name"] or row["run_id"]
            state = row["state"] or "unknown run"
            link = "run?" + urlencode({"project": row["run_project"], "run": row["run_id"]})
            nodes[run_id] = (f'  {run_id} [shape=ellipse, style=filled, fillcolor="#e3edf7", '
                             f'label="{_quote(name)}\\n{_quote(state)}", URL="{_quote(link)}", target="_top"];')
        edges.append(f"  {run_id} -> {version_id};" if row["direction"] == "output" else f"  {version_id} -> {run_id};")
        if len(nodes) >= MAX_NODES:
            break
    lines += list(nodes.values()) + list(dict.fromkeys(edges)) + ["}"]
    return "\n".join(lines)


def producers_and_consumers(rows: Sequence[dict], project: str, name: str,
                            version: int) -> tuple[list[dict], list[dict]]:
    """(runs that logged, runs that used) version `name:v<version>` of `project`, as lineage rows."""
    mine = [row for row in rows if (row["project"], row["name"], row["version"]) == (project, name, version)]
    return ([row for row in mine if row["direction"] == "output"], [row for row in mine if row["direction"] == "input"])


def _id(prefix: str, *parts: str) -> str:
    """A DOT node id that no user text can break out of: a hash of the parts."""
    return prefix + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _quote(text: str) -> str:
    """`text` inside a DOT double-quoted string (backslashes, quotes and line breaks escaped)."""
    return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "")
