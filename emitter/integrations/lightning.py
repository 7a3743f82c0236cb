"""Lightning -> Pulse: `PulseLogger`, a `lightning.pytorch.loggers.Logger`.

Example:
    from emitter.integrations.lightning import PulseLogger

    logger = PulseLogger(project="mnist", name="baseline")
    logger.watch(model, log="all", log_freq=50)
    Trainer(logger=logger, max_epochs=3).fit(model, data)

Metrics are stored at the step Lightning passes (its global step); `save_hyperparameters()` and
`log_hyperparams` fill the config. The run is the active `emitter.run`, else one started on
first use; `logger.experiment.finish()` ends it, and a new PulseLogger (the next fold) then
starts a new run.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from lightning.fabric.utilities.logger import (
    _add_prefix,
    _convert_json_serializable,
    _convert_params,
    _sanitize_callable_params,
)
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

import emitter

from . import live_run


class PulseLogger(Logger):
    """Logs a Lightning run to Pulse; `init` arguments (group, tags, config...) pass to `emitter.init`."""

    LOGGER_JOIN_CHAR = "-"

    def __init__(self, project: str | None = None, name: str | None = None, save_dir: str | None = ".",
                 id: str | None = None, prefix: str = "", **init: Any) -> None:
        super().__init__()
        self._project = project
        self._run_name = name
        self._save_dir = save_dir
        self._id = id
        self._prefix = prefix
        self._init = init
        self._run: Any = None

    @property
    @rank_zero_experiment
    def experiment(self) -> emitter.Run:
        """The `emitter.Run` this logger writes to (started on first use)."""
        if self._run is None:
            self._run = live_run() or emitter.init(project=self._project, name=self._run_name, id=self._id,
                                                   **self._init)
        return self._run

    @property
    def name(self) -> str:
        """The project (Lightning puts checkpoints in save_dir/name/version)."""
        return self._project or (self._run.project if self._run is not None else "lightning_logs")

    @property
    def version(self) -> str | None:
        return self._run.id if self._run is not None else self._id

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        params = _convert_json_serializable(_sanitize_callable_params(_convert_params(params)))
        self.experiment.config.update(params, allow_val_change=True)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        metrics = _add_prefix(dict(metrics), self._prefix, self.LOGGER_JOIN_CHAR)
        self.experiment.log(metrics, step=step)

    @rank_zero_only
    def log_image(self, key: str, images: list[Any], step: int | None = None, **kwargs: list[Any]) -> None:
        """Log images (arrays, tensors, PIL images, paths) under one key; kwargs are per-image lists (caption)."""
        if not isinstance(images, list):
            raise TypeError(f"images must be a list, not {type(images).__name__}")
        for field, values in kwargs.items():
            if len(values) != len(images):
                raise ValueError(f"{len(images)} images but {len(values)} values of {field}")
        per_image = [{field: values[i] for field, values in kwargs.items()} for i in range(len(images))]
        self.log_metrics({key: [emitter.Image(image, **extra) for image, extra in zip(images, per_image)]}, step)

    def watch(self, model: Any, log: str | None = "gradients", log_freq: int = 100, log_graph: bool = True) -> None:
        """Gradient (and parameter) histograms and norms of `model`; see `emitter.watch`."""
        from emitter.torch_hooks import watch as watch_models

        watch_models(self.experiment, model, log=log, log_freq=log_freq, log_graph=log_graph)
