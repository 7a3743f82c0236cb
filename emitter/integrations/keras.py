"""Keras 3 -> Pulse: `PulseCallback`, a `keras.callbacks.Callback` (any backend).

Example:
    from emitter.integrations.keras import PulseCallback

    model.fit(x, y, epochs=5, validation_split=0.1, callbacks=[PulseCallback(log_freq=10)])

Keys follow W&B's `WandbMetricsLogger`: `epoch/<metric>` (and `epoch/epoch`) at the end of each
epoch, `batch/<metric>` every `log_freq` batches when `log_freq` is a number; all are stored at the
optimizer's iteration count, Keras' global step. The config gets fit()'s params and the optimizer.
"""

from __future__ import annotations

from typing import Any

import keras

import emitter

from . import live_run


class PulseCallback(keras.callbacks.Callback):
    """Logs a Keras fit() to Pulse; `init` arguments (project, name, config...) pass to `emitter.init`."""

    def __init__(self, log_freq: str | int = "epoch", **init: Any) -> None:
        super().__init__()
        if log_freq != "epoch" and not (isinstance(log_freq, int) and log_freq > 0):
            raise ValueError(f"log_freq must be 'epoch' or a positive number of batches, not {log_freq!r}")
        self._log_freq = log_freq
        self._init = init
        self._run: Any = None
        self._batches = 0

    @property
    def run(self) -> emitter.Run:
        if self._run is None or self._run is not live_run():
            self._run = live_run() or emitter.init(**self._init)
        return self._run

    def on_train_begin(self, logs: dict | None = None) -> None:
        config = {f"fit/{k}": v for k, v in (self.params or {}).items() if isinstance(v, (int, float, str, bool))}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            config["optimizer"] = type(optimizer).__name__
            config["optimizer/learning_rate"] = _number(getattr(optimizer, "learning_rate", None))
        self.run.config.update(config, allow_val_change=True)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches += 1
        if self._log_freq != "epoch" and self._batches % self._log_freq == 0 and logs:
            values = {f"batch/{k}": _number(v) for k, v in logs.items()}
            values["batch/batch_step"] = self._batches
            self.run.log(values, step=self._step())

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        values = {f"epoch/{k}": _number(v) for k, v in (logs or {}).items()}
        values["epoch/epoch"] = epoch
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and getattr(optimizer, "learning_rate", None) is not None:
            values["epoch/learning_rate"] = _number(optimizer.learning_rate)
        self.run.log(values, step=self._step())

    def _step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            return self._batches
        return int(keras.ops.convert_to_numpy(optimizer.iterations))


def _number(value: Any) -> Any:
    """A Keras variable or tensor as a Python number (other values pass through)."""
    if value is None or isinstance(value, (int, float, bool)):
        return value
    try:
        return float(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return value
