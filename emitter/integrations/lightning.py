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

`log_model` follows W&B's WandbLogger: True logs the checkpoints ModelCheckpoint kept when training
ends (every one at once if `save_top_k == -1`), "all" each one as it is saved; each is a version of
the artifact `model-<run id>` (type "model"), the best one aliased "best".
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
                 id: str | None = None, prefix: str = "", log_model: bool | str = False, **init: Any) -> None:
        super().__init__()
        if log_model not in (False, True, "all"):
            raise ValueError(f"log_model must be False, True or 'all', not {log_model!r}")
        self._log_model = log_model
        self._checkpoint_callback: Any = None
        self._logged_checkpoints: set[str] = set()
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

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._log_model == "all" or (self._log_model is True and checkpoint_callback.save_top_k == -1):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callback = checkpoint_callback  # the kept ones are known when training ends

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if status == "success" and self._checkpoint_callback is not None and self._run is not None:
            self._log_checkpoints(self._checkpoint_callback)

    @rank_zero_only
    def _log_checkpoints(self, callback: Any) -> None:
        """Each checkpoint file not logged yet becomes a version of `model-<run id>`, as W&B names it."""
        paths = {**{path: float(score) for path, score in callback.best_k_models.items()},
                 **({callback.last_model_path: None} if callback.last_model_path else {})}
        for path, score in sorted(paths.items()):
            if path in self._logged_checkpoints or not path:
                continue
            artifact = emitter.Artifact(f"model-{self.experiment.id}", type="model", metadata={
                "score": score, "original_filename": path.rsplit("/", 1)[-1],
                "monitor": callback.monitor, "save_top_k": callback.save_top_k})
            artifact.add_file(path, name="model.ckpt")
            aliases = ["latest", "best"] if path == callback.best_model_path else ["latest"]
            self.experiment.log_artifact(artifact, aliases=aliases)
            self._logged_checkpoints.add(path)
