"""The media contract: what the emitter writes, the ingest accepts and the dashboard reads.

Standard library only, because all three import it. A media record (a row of the `media` table) has
a `kind` from KINDS and a `mime` from that kind's list; its bytes are a blob named by their sha256.

| kind     | mimes                                                   | bytes                                   |
|----------|---------------------------------------------------------|-----------------------------------------|
| image    | image/png (jpeg, gif, webp by uri)                      | the picture; width, height set          |
| audio    | audio/wav, audio/flac, audio/mpeg, audio/ogg            | the sound file (sample rate inside)     |
| video    | video/mp4, video/webm, video/ogg, image/gif             | the clip; width, height = frame size    |
| html     | text/html                                               | a UTF-8 document                        |
| object3d | POINTS_MIME, model/obj, model/gltf-binary, ...          | a point cloud (below) or a 3D model     |
| table    | TABLE_MIME                                              | a table document (below)                |
| plot     | PLOT_MIME                                               | a table document plus a chart spec      |
| plotly   | PLOTLY_MIME                                             | a Plotly figure as JSON (`fig.to_json()`) |

Table document (JSON object)::

    {"_type": "table", "columns": ["id", "input", "score"],
     "column_types": ["number", "image", "number"],
     "data": [[0, {"_media": "image", "sha256": "9f86...", "mime": "image/png",
                   "width": 28, "height": 28, "caption": ""}, 0.93]]}

A cell is JSON (null, bool, number, string, list, object; NaN and Infinity as Python's json writes
them) or a media reference: an object with "_media" (a kind of CELL_KINDS), "sha256" and "mime".
Every referenced medium is also a row of `media` of its own, under the key `cell_key(table key)`
at the table's step, so its uri is `SELECT uri FROM media WHERE project = .. AND run_id = .. AND
sha256 = ..`. `column_types` holds one of COLUMN_TYPES per column ("" = only nulls).

Plot document: ``{"_type": "plot", "spec": SPEC, "table": TABLE}``. SPEC is declarative, drawn by
the dashboard with any charting library: ``{"chart": "line", "x": "step", "y": "loss",
"color": "run" | None, "value": None, "title": "", "x_label": "", "y_label": "",
"preset": "pr_curve"}``; `chart` is one of CHARTS and names the columns it needs in CHART_FIELDS
(a heatmap draws `value` at (x, y): a confusion matrix).

Point cloud (POINTS_MIME, W&B's `.pts.json`): a JSON list of points, each [x, y, z],
[x, y, z, c] (c: a category, coloured by index) or [x, y, z, r, g, b] (0..255); or W&B's scene
object ``{"type": "lidar/beta", "points": [...], "boxes": [...], "vectors": [...]}``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_MEDIA_BYTES = 25_000_000  # per medium, emitter and ingest alike
TABLE_MIME = "application/vnd.pulse.table+json"
PLOT_MIME = "application/vnd.pulse.plot+json"
POINTS_MIME = "application/vnd.pulse.pts+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

MIMES: dict[str, tuple[str, ...]] = {
    "image": ("image/png", "image/jpeg", "image/gif", "image/webp"),
    "audio": ("audio/wav", "audio/flac", "audio/mpeg", "audio/ogg"),
    "video": ("video/mp4", "video/webm", "video/ogg", "image/gif"),
    "html": ("text/html",),
    "object3d": (POINTS_MIME, "model/obj", "model/gltf-binary", "model/gltf+json", "model/stl"),
    "table": (TABLE_MIME,),
    "plot": (PLOT_MIME,),
    "plotly": (PLOTLY_MIME,),
}
KINDS = tuple(MIMES)
CELL_KINDS = ("image", "audio", "video", "html", "object3d")  # what a table cell may hold
COLUMN_TYPES = ("", "number", "bool", "string", "json", *CELL_KINDS)
CELL_KEY_PREFIX = "_cells/"  # media of a table's cells: key "_cells/<table key>"
# File name endings -> mime, for media logged from a path (and blob names).
EXTENSIONS = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg",
    ".mp4": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg",
    ".html": "text/html", ".htm": "text/html",
    ".pts.json": POINTS_MIME, ".obj": "model/obj", ".glb": "model/gltf-binary", ".gltf": "model/gltf+json",
    ".stl": "model/stl",
}

CHARTS = ("line", "scatter", "bar", "histogram", "heatmap")
# The spec fields naming columns that a chart needs, then those it may use.
CHART_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "line": (("x", "y"), ("color",)),
    "scatter": (("x", "y"), ("color",)),
    "bar": (("x", "y"), ("color",)),
    "histogram": (("x",), ("color",)),
    "heatmap": (("x", "y", "value"), ()),
}
SPEC_TEXT_FIELDS = ("title", "x_label", "y_label", "preset")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def mime_for_path(path: str, kind: str) -> str:
    """The mime of a file by its name, if `kind` takes it; ValueError naming what `kind` takes."""
    lower = path.lower()
    for ending, mime in sorted(EXTENSIONS.items(), key=lambda item: -len(item[0])):
        if lower.endswith(ending) and mime in MIMES[kind]:
            return mime
    endings = sorted(e for e, m in EXTENSIONS.items() if m in MIMES[kind])
    raise ValueError(f"{path!r}: a {kind} file must end with one of {', '.join(endings)}")


def cell_key(table_key: str) -> str:
    """The media key of a table's cells."""
    return CELL_KEY_PREFIX + table_key


def media_ref(kind: str, sha256: str, mime: str, width: int = 0, height: int = 0, caption: str = "") -> dict:
    """A table cell's reference to a medium stored on its own."""
    return {"_media": kind, "sha256": sha256, "mime": mime, "width": width, "height": height, "caption": caption}


def is_media_ref(cell: Any) -> bool:
    return isinstance(cell, dict) and "_media" in cell


def table_refs(doc: dict) -> list[dict]:
    """Every media reference in a table document, in row order."""
    return [cell for row in doc["data"] for cell in row if is_media_ref(cell)]


def dumps(doc: Any) -> bytes:
    """A document as the bytes stored (compact JSON, UTF-8)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# -- checks, shared by the emitter (before sending) and the ingest (on receipt) -------------------


def media_problem(kind: str, mime: str, data: bytes) -> str | None:
    """Why a medium of `kind`/`mime` with these bytes is unusable, or None. The JSON documents are
    parsed and checked (the dashboard reads them); other formats are taken as their mime says."""
    if kind not in MIMES:
        return f"kind {kind!r} is not one of {', '.join(KINDS)}"
    if mime not in MIMES[kind]:
        return f"mime {mime!r} is not one a {kind} may have ({', '.join(MIMES[kind])})"
    if len(data) > MAX_MEDIA_BYTES:
        return f"{len(data):,} bytes; the limit is {MAX_MEDIA_BYTES:,}"
    if not data:
        return None  # bytes elsewhere (a uri): nothing to check here
    if mime in (TABLE_MIME, PLOT_MIME, POINTS_MIME, PLOTLY_MIME, "model/gltf+json", "text/html"):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"a {kind} must be UTF-8 text: {exc}"
        if mime == "text/html" or mime == "model/gltf+json":
            return None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            return f"a {kind} must be JSON: {exc}"
        check = {TABLE_MIME: table_problem, PLOT_MIME: plot_problem, POINTS_MIME: points_problem,
                 PLOTLY_MIME: plotly_problem}[mime]
        return check(doc)
    return None


def table_problem(doc: Any) -> str | None:
    """Why `doc` is not a table document, or None."""
    if not isinstance(doc, dict) or doc.get("_type") != "table":
        return 'a table document is a JSON object with "_type": "table"'
    columns, types, data = doc.get("columns"), doc.get("column_types"), doc.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        return "table columns must be a list of strings"
    if len(set(columns)) != len(columns):
        return f"table columns must be unique: {columns}"
    if not isinstance(types, list) or len(types) != len(columns) or any(t not in COLUMN_TYPES for t in types):
        return f"table column_types must be one of {COLUMN_TYPES} per column"
    if not isinstance(data, list):
        return "table data must be a list of rows"
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            return f"table row {i} must be a list of {len(columns)} cells"
        for column, cell in zip(columns, row):
            if is_media_ref(cell) and (problem := _ref_problem(cell)):
                return f"table row {i}, column {column!r}: {problem}"
    return None


def _ref_problem(ref: dict) -> str | None:
    kind, sha, mime = ref.get("_media"), ref.get("sha256"), ref.get("mime")
    if kind not in CELL_KINDS:
        return f"a media cell's _media must be one of {', '.join(CELL_KINDS)}, not {kind!r}"
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        return "a media cell's sha256 must be 64 lowercase hex digits"
    if mime not in MIMES[kind]:
        return f"a {kind} cell's mime must be one of {', '.join(MIMES[kind])}, not {mime!r}"
    return None


def plot_problem(doc: Any) -> str | None:
    """Why `doc` is not a plot document, or None."""
    if not isinstance(doc, dict) or doc.get("_type") != "plot":
        return 'a plot document is a JSON object with "_type": "plot"'
    if problem := table_problem(doc.get("table")):
        return f"plot table: {problem}"
    return spec_problem(doc.get("spec"), doc["table"]["columns"])


def spec_problem(spec: Any, columns: list[str]) -> str | None:
    """Why `spec` is not a chart spec over these columns, or None."""
    if not isinstance(spec, dict) or spec.get("chart") not in CHARTS:
        return f"a plot spec is a JSON object whose chart is one of {', '.join(CHARTS)}"
    needed, optional = CHART_FIELDS[spec["chart"]]
    for name in needed + optional:
        value = spec.get(name)
        if value is None and name in optional:
            continue
        if value not in columns:
            return f"plot spec {name}={value!r} is not a column of its table ({columns})"
    unknown = set(spec) - {"chart", *needed, *optional, *SPEC_TEXT_FIELDS}
    if unknown:
        return f"plot spec has unknown fields {sorted(unknown)}"
    if any(not isinstance(spec.get(name, ""), str) for name in SPEC_TEXT_FIELDS):
        return f"plot spec fields {SPEC_TEXT_FIELDS} must be strings"
    return None


def points_problem(doc: Any) -> str | None:
    """Why `doc` is not a point cloud (`.pts.json`), or None."""
    if isinstance(doc, dict):
        if doc.get("type") != "lidar/beta":
            return 'a point cloud object must have "type": "lidar/beta"'
        doc = doc.get("points", [])
    if not isinstance(doc, list):
        return "a point cloud is a list of points"
    # Fast checks over the whole cloud first (clouds run to hundreds of thousands of points); the
    # slow walk below only runs to name the first bad point.
    if all(type(p) is list for p in doc) and set(map(len, doc)) <= {3, 4, 6}:
        values = [v for p in doc for v in p]
        if all(type(v) in (int, float) for v in values) and all(map(math.isfinite, values)):
            return None
    for i, point in enumerate(doc):
        if not isinstance(point, list) or len(point) not in (3, 4, 6) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in point):
            return f"point {i} must be 3, 4 or 6 finite numbers (x, y, z[, category | r, g, b])"
    return None


def plotly_problem(doc: Any) -> str | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("data", []), list):
        return 'a Plotly figure is a JSON object with a "data" list'
    return None
