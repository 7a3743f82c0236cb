"""`emitter.Api`: read runs, their history and artifacts back into Python, as W&B's public API does.

Everything goes through the ingest's read-only Query RPC, so the caller's API key and its project
scope apply (a key for project A sees no run of project B). History comes back as pandas
DataFrames; pandas and pyarrow are imported when the first query runs, never by `import emitter`.

Example (a notebook):
    api = emitter.Api()                                   # PULSE_SERVER, PULSE_API_KEY
    runs = api.runs("cifar", filters={"config.lr": {"$lt": 0.01}, "state": "finished"},
                    order="-summary_metrics.val_acc")
    best = runs[0]
    best.config["lr"], best.summary["val_acc"]
    best.history(keys=["train/loss", "val/acc"], samples=500)   # DataFrame, min/max kept per bucket
    for row in best.scan_history(keys=["train/loss"]):          # every point, page by page
        ...
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import api_sql
from .api_filters import Filters

DEFAULT_SERVER = "127.0.0.1:50051"
MAX_ROWS = 10_000_000  # the Query RPC's own bound; pages stay far below it


class Api:
    """A connection to a Pulse server for reading. `server` and `api_key` default to PULSE_SERVER and
    PULSE_API_KEY (then 127.0.0.1:50051, no key), as the emitter's Settings do.

    Example:
        api = emitter.Api(server="tracker:50051", api_key=os.environ["PULSE_API_KEY"])
    """

    def __init__(self, server: str | None = None, api_key: str | None = None, overrides: dict | None = None,
                 timeout: float = 60.0, tls_ca: str | None = None) -> None:
        overrides = overrides or {}
        self.server = server or overrides.get("server") or os.environ.get("PULSE_SERVER") or DEFAULT_SERVER
        self.api_key = api_key if api_key is not None else os.environ.get("PULSE_API_KEY", "")
        self.tls_ca = tls_ca if tls_ca is not None else os.environ.get("PULSE_TLS_CA", "")
        self.timeout = timeout
        self._client = None

    def query(self, sql: str, parameters: dict[str, Any] | None = None, max_rows: int = 0) -> list[dict]:
        """Rows of one read-only statement (the Query RPC), as dicts."""
        if self._client is None:
            from pulse.client import QueryClient  # pyarrow: only once something is read

            self._client = QueryClient(self.server, self.api_key, self.tls_ca or None)
        return self._client.query(sql, parameters, max_rows=max_rows, timeout=self.timeout).to_pylist()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------------------

    def runs(self, path: str, filters: dict | None = None, order: str = "-created_at", per_page: int = 50,
             **_ignored: Any) -> Runs:
        """The runs of a project ("project" or W&B's "entity/project"), filtered with W&B's filter
        syntax (emitter/api_filters.py) and ordered by `order`; fetched `per_page` at a time.

        Example:
            api.runs("mnist", {"$or": [{"tags": "baseline"}, {"summary_metrics.acc": {"$gt": 0.9}}]})
        """
        if not 1 <= per_page <= 10_000:
            raise ValueError(f"per_page must be 1..10000, not {per_page}")
        return Runs(self, self._project(path), filters, order, per_page)

    def run(self, path: str) -> Run:
        """One run: "project/run_id" (or W&B's "entity/project/run_id", "entity/project/runs/run_id").

        Raises ValueError when there is no such run, or the key may not read its project."""
        parts = [p for p in path.strip("/").split("/")]
        if len(parts) >= 3 and parts[-2] == "runs":
            del parts[-2]
        if len(parts) < 2:
            raise ValueError(f"run path {path!r} must be 'project/run_id'")
        run_id = parts[-1]
        candidates = ["/".join(parts[:-1])] + (["/".join(parts[1:-1])] if len(parts) > 2 else [])
        for project in candidates:
            found = Runs(self, project, {"id": run_id}, "-created_at", 1)
            if len(found):
                return found[0]
        raise ValueError(f"no run {path!r} (or this API key may not read project {candidates[0]!r})")

    def _project(self, path: str) -> str:
        """A project named as W&B names one: "project" or "entity/project" (no entities in Pulse)."""
        path = path.strip("/")
        if "/" in path and not self.query(api_sql.PROJECT_HAS_RUNS, {"project": path})[0]["n"]:
            return path.split("/", 1)[1]
        return path

    # -- artifacts ------------------------------------------------------------------------------

    def artifact(self, name: str, type: str | None = None) -> Any:
        """An artifact version: "project/name:alias" or "project/name:v3" (emitter.artifacts)."""
        try:
            from .artifact_jobs import fetched
            from .artifact_upload import ArtifactClient, ArtifactError
            from .run_artifacts import parse_reference
        except ImportError as exc:
            raise NotImplementedError(f"this emitter has no artifacts ({exc})") from None
        if "/" not in name:
            raise ValueError(f"artifact {name!r} must be 'project/name:alias' or 'project/name:v3'")
        project, artifact, ref = parse_reference(name, "")
        connection = (self.server, self.api_key, self.tls_ca)
        client = ArtifactClient(*connection)
        try:
            version = client.resolve(project, artifact, ref)
        except ArtifactError as exc:
            raise ValueError(f"artifact {name!r}: {exc}") from None
        finally:
            client.close()
        found = fetched(version, connection)
        if type and found.type != type:
            raise ValueError(f"artifact {name!r} is of type {found.type!r}, not {type!r}")
        return found


class Runs:
    """The runs a query matches, fetched a page at a time; `len()` is the total, and it indexes and
    iterates like a list."""

    def __init__(self, api: Api, project: str, filters: dict | None, order: str, per_page: int) -> None:
        compiled = Filters()
        where, by = compiled.where(filters), compiled.order(order)
        self._sql = api_sql.RUNS_PAGE.replace("/*WHERE*/", where).replace("/*ORDER*/", by)
        self._parameters = {**compiled.parameters, "project": project}
        self._api, self.project, self.per_page = api, project, per_page
        self._pages: dict[int, list[Run]] = {}
        self._total: int | None = None

    def _page(self, number: int) -> list[Run]:
        if number not in self._pages:
            rows = self._api.query(self._sql, {**self._parameters, "limit": self.per_page,
                                               "offset": number * self.per_page})
            self._total = rows[0]["total"] if rows else (self._total if number else 0)
            if self._total is None:
                self._total = 0
            self._pages[number] = [Run(self._api, row) for row in rows]
        return self._pages[number]

    def __len__(self) -> int:
        if self._total is None:
            self._page(0)
        return self._total or 0

    def __getitem__(self, index: int) -> Run:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"run {index} of {len(self)}")
        return self._page(index // self.per_page)[index % self.per_page]

    def __iter__(self) -> Iterator[Run]:
        number = 0
        while True:
            page = self._page(number)
            yield from page
            if len(page) < self.per_page:
                return
            number += 1

    def __repr__(self) -> str:
        return f"<Runs {self.project} ({len(self)})>"


@dataclass
class RunFile:
    """A file the run saved (`emitter.save`), in the run's `run-<id>-files` artifact."""

    name: str
    size: int
    sha256: str
    _run: Run

    def download(self, root: str = ".", replace: bool = False) -> str:
        """Fetch the file into `root`; its local path."""
        artifact = self._run._api.artifact(f"{self._run.project}/run-{self._run.id}-files:latest")
        return artifact.get_entry(self.name).download(root)


class Run:
    """One run as the server stores it: `id`, `name`, `state`, `config`, `summary`, `tags`, ...,
    and its history. Made by `Api.run` and `Api.runs`."""

    def __init__(self, api: Api, row: dict) -> None:
        self._api = api
        self.project: str = row["project"]
        self.id: str = row["run_id"]
        self.name: str = row["name"] or row["run_id"]
        self.display_name = self.name
        self.group: str = row["group"]
        self.job_type: str = row["job_type"]
        self.tags: list[str] = list(row["tags"])
        self.notes: str = row["notes"]
        self.sweep_id: str = row["sweep_id"]
        self.state: str = row["state"]
        self.exit_code: int = row["exit_code"]
        self.error: str = row["error"]
        self.host: str = row["host"]
        self.created_at: str = _iso(row["created_at"])
        self.updated_at: str = _iso(row["updated_at"])
        self.heartbeat_at: str = _iso(row["heartbeat_at"])
        self.config: dict = _document(row["config"])
        self.summary: dict = _document(row["summary"])
        self.summary_metrics = self.summary
        self.path = [self.project, self.id]

    def __repr__(self) -> str:
        return f"<Run {self.project}/{self.id} ({self.state})>"

    def _keys(self, keys: list[str] | str | None) -> list[str]:
        if keys is None:
            return []
        keys = [keys] if isinstance(keys, str) else list(keys)
        return [k for k in keys if k != "_step"]

    def history(self, keys: list[str] | None = None, samples: int = 500, x_axis: str = "_step",
                pandas: bool = True, stream: str = "default") -> Any:
        """The run's metrics, one row per step with a column per key, at most about `samples` points
        per key: a longer series is cut into samples / 2 buckets of steps, each giving the points of
        its minimum and its maximum (so spikes stay, and every value shown was logged). A DataFrame
        (`pandas=False`: a list of dicts). `x_axis` names another key to fetch with them.

        Example:
            frame = run.history(keys=["loss"], samples=1000)
            frame.plot(x="_step", y="loss")
        """
        if samples < 2:
            raise ValueError(f"samples must be at least 2, not {samples}")
        keys = self._keys(keys)
        if x_axis != "_step" and keys and x_axis not in keys:
            keys.append(x_axis)
        base = {"project": self.project, "run_id": self.id}
        bounds = self._api.query(api_sql.HISTORY_BOUNDS, {**base, "keys": keys})
        whole = [b["key"] for b in bounds if b["steps"] <= samples]
        cut = [b for b in bounds if b["steps"] > samples]
        points: list[tuple[int, str, float]] = []
        if whole:
            rows = self._api.query(api_sql.HISTORY_POINTS, {**base, "keys": whole}, max_rows=MAX_ROWS)
            points += [(r["step"], r["key"], r["value"]) for r in rows]
        if cut:
            buckets = max(1, samples // 2)
            widths = [math.ceil((b["last"] - b["first"] + 1) / buckets) for b in cut]
            rows = self._api.query(api_sql.HISTORY_BUCKETS, {**base, "keys": [b["key"] for b in cut],
                                                             "firsts": [b["first"] for b in cut], "widths": widths},
                                   max_rows=MAX_ROWS)
            for r in rows:
                points.append((r["min_step"], r["key"], r["min_value"]))
                points.append((r["max_step"], r["key"], r["max_value"]))
        rows_by_step: dict[int, dict] = {}
        for step, key, value in sorted(points, key=lambda p: (p[0], p[1])):
            rows_by_step.setdefault(step, {"_step": step})[key] = value
        rows = [rows_by_step[s] for s in sorted(rows_by_step)]
        return _frame(rows, keys) if pandas else rows

    def scan_history(self, keys: list[str] | None = None, page_size: int = 1000, min_step: int | None = None,
                     max_step: int | None = None) -> Iterator[dict]:
        """Every logged point, as one dict per step (`_step`, `_timestamp` in seconds, each key),
        fetched `page_size` steps at a time. With `keys`, as in W&B, only the steps that hold all
        of them. Steps run from `min_step` to `max_step`, both included.

        Example:
            losses = [row["loss"] for row in run.scan_history(keys=["loss"])]
        """
        keys = self._keys(keys)
        if not 1 <= page_size <= 100_000:
            raise ValueError(f"page_size must be 1..100000, not {page_size}")
        lo = 0 if min_step is None else int(min_step)
        hi = (1 << 63) - 1 if max_step is None else int(max_step)
        base = {"project": self.project, "run_id": self.id, "keys": keys, "steps": page_size, "hi": hi}
        while lo <= hi:
            page = self._api.query(api_sql.SCAN_PAGE, {**base, "lo": lo}, max_rows=MAX_ROWS)
            if not page:
                return
            row: dict = {}
            for point in page:
                if row and row["_step"] != point["step"]:
                    if _complete(row, keys):
                        yield row
                    row = {}
                if not row:
                    row = {"_step": point["step"], "_timestamp": 0.0}
                row[point["key"]] = point["value"]
                row["_timestamp"] = max(row["_timestamp"], point["ts_us"] / 1e6)
            if _complete(row, keys):
                yield row
            lo = page[-1]["step"] + 1

    def files(self) -> list[RunFile]:
        """The files the run saved with `emitter.save` (newest version of each)."""
        rows = self._api.query(api_sql.RUN_FILES, {"project": self.project, "name": f"run-{self.id}-files"})
        return [RunFile(r["path"], r["size"], r["sha256"], self) for r in rows]

    def logged_artifacts(self) -> list[Any]:
        """The artifact versions this run logged (made), oldest first."""
        return self._artifacts("output")

    def used_artifacts(self) -> list[Any]:
        """The artifact versions this run used, oldest first."""
        return self._artifacts("input")

    def _artifacts(self, direction: str) -> list[Any]:
        rows = self._api.query(api_sql.RUN_ARTIFACTS, {"project": self.project, "run_id": self.id,
                                                       "direction": direction})
        return [self._api.artifact(f"{r['project']}/{r['name']}:v{r['version']}") for r in rows]


def _complete(row: dict, keys: list[str]) -> bool:
    return all(k in row for k in keys)


def _document(text: str) -> dict:
    """A config or summary as stored (JSON text; Python's NaN and Infinity read back as floats)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _frame(rows: list[dict], keys: list[str]) -> Any:
    import pandas as pd

    columns = ["_step", *keys] if keys else None
    frame = pd.DataFrame(rows, columns=columns)
    return frame if not frame.empty or columns else pd.DataFrame(columns=["_step"])
