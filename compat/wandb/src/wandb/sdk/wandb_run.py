"""`wandb.Run` (also `wandb.wandb_run.Run` and `wandb.sdk.wandb_run.Run`): W&B's run API over an `emitter.Run`.

The emitter keeps W&B's semantics itself (nested dicts and arrays in `log()`, `UsageError` once
the run is finished, name/tags/notes set after init); this class gives them W&B's names.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import emitter

from .. import _missing

_current: Run | None = None


def current() -> Run | None:
    """The `Run` over `emitter.run` (what `wandb.run` is), or None between runs."""
    global _current
    run = emitter.run
    if run is None:
        return None
    if _current is None or _current._run is not run:
        _current = Run(run)
    return _current


class Run:
    """A W&B-style run. `wandb.init()` returns one; its data go to the `emitter.Run` it wraps.

    Example:
        run = wandb.init(project="mnist", config={"lr": 0.1})
        run.log({"loss": 0.3})
        run.finish()
    """

    def __init__(self, run: emitter.Run) -> None:
        self._run = run

    # -- identity -----------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._run.id

    @property
    def name(self) -> str:
        return self._run.name

    @name.setter
    def name(self, value: str) -> None:
        self._run.name = value

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._run.tags)

    @tags.setter
    def tags(self, value: Any) -> None:
        self._run.tags = list(value)

    @property
    def notes(self) -> str:
        return self._run.notes

    @notes.setter
    def notes(self, value: str) -> None:
        self._run.notes = value

    @property
    def project(self) -> str:
        return self._run.project

    @property
    def entity(self) -> str:
        return ""  # Pulse has projects, not entities

    @property
    def path(self) -> str:
        return f"{self.project}/{self.id}"

    @property
    def url(self) -> str:
        return self._run.url

    def get_url(self) -> str:
        return self._run.url

    @property
    def dir(self) -> str:
        """A local directory for this run's files (`<PULSE_DIR>/files/<run id>`)."""
        path = Path(self._run.settings.dir) / "files" / self.id
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    @property
    def config(self) -> emitter.Config:
        return self._run.config

    @property
    def summary(self) -> emitter.Summary:
        return self._run.summary

    @property
    def offline(self) -> bool:
        return self._run.mode == "offline"

    @property
    def disabled(self) -> bool:
        return self._run.mode == "disabled"

    # -- logging --------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None,
            sync: bool | None = None) -> None:
        """Log metrics; see `emitter.Run.log`. Raises UsageError once the run is finished."""
        del sync  # deprecated in W&B, and without meaning here
        if not isinstance(data, Mapping):
            raise TypeError(f"log() takes a dict of metrics, not {type(data).__name__}")
        self._run.log(data if type(data) is dict else dict(data), step=step, commit=commit)

    def define_metric(self, name: str, step_metric: Any = None, step_sync: bool | None = None,
                      hidden: bool | None = None, summary: str | None = None, goal: str | None = None,
                      overwrite: bool | None = None) -> Any:
        """Say how a metric is summarised and plotted; see `emitter.Run.define_metric`."""
        step_metric = getattr(step_metric, "name", step_metric)  # W&B also takes the object define_metric returned
        return self._run.define_metric(name, step_metric=step_metric, summary=summary, goal=goal,
                                       hidden=bool(hidden), step_sync=step_sync, overwrite=overwrite)

    def alert(self, title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
        self._run.alert(title, text, level or "INFO")

    def watch(self, models: Any, criterion: Any = None, log: str | None = "gradients", log_freq: int = 1000,
              idx: int | None = None, log_graph: bool = False) -> None:
        """Gradient (and parameter) histograms of torch models; see `emitter.watch`."""
        self._run._refuse_if_ended("watch()")
        from emitter.torch_hooks import watch as watch_models

        watch_models(self._run, models, criterion=criterion, log=log, log_freq=log_freq, idx=idx,
                     log_graph=log_graph)

    def unwatch(self, models: Any = None) -> None:
        emitter.unwatch(models)

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """End the run (flush, wait for the server); `wandb.run` is None afterwards."""
        self._run.finish(exit_code=exit_code, quiet=bool(quiet))

    def _label(self, **_: Any) -> None:
        """W&B's telemetry label for the integration in use (transformers calls it); nothing to record."""

    def log_artifact(self, artifact_or_path: Any, name: str | None = None, type: str | None = None,
                     aliases: list[str] | None = None, tags: list[str] | None = None) -> Any:
        """W&B's run.log_artifact, by the emitter's run (emitter/run_artifacts.py)."""
        return self._run.log_artifact(artifact_or_path, name=name, type=type, aliases=aliases, tags=tags)

    def use_artifact(self, artifact_or_name: Any, type: str | None = None, aliases: list[str] | None = None,
                     use_as: str | None = None) -> Any:
        return self._run.use_artifact(artifact_or_name, type=type, aliases=aliases, use_as=use_as)

    def save(self, glob_str: Any = None, base_path: Any = None, policy: str = "live") -> Any:
        return self._run.save(glob_str, base_path=base_path, policy=policy)

    log_model = _missing.feature("log_model", 14)
    use_model = _missing.feature("use_model", 14)
    link_model = _missing.feature("link_model", 14)
    log_code = _missing.feature("log_code", 14)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_run":  # copy and pickle probe these before __init__
            raise AttributeError(name)
        return getattr(self._run, name)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is not None:
            self._run._exit = (1, f"{kind.__name__}: {value}")
        self.finish(exit_code=1 if kind is not None else None)

    def __repr__(self) -> str:
        return f"<wandb Run {self.project}/{self.id} ({self.name}) on Pulse>"

