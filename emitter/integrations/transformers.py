"""Hugging Face Trainer -> Pulse: `PulseCallback`, also `report_to="pulse"` once this module is imported.

Example:
    from emitter.integrations.transformers import PulseCallback

    trainer = Trainer(model, args, train_dataset=train, eval_dataset=val, callbacks=[PulseCallback()])
    # or: import emitter.integrations.transformers; TrainingArguments(..., report_to="pulse")

Keys are those W&B's callback logs (`train/loss`, `eval/loss`, `train/learning_rate`, ...), stored
at the Trainer's global step; the run-total figures (`train_runtime`, `train_loss`, ...) go to
the summary, and the config holds the model's config, the TrainingArguments and
`model/num_parameters`. `watch="gradients"` (or "parameters", "all") adds `watch()` histograms.
The run is `emitter.run` when one is active, else a new one that lives until `emitter.finish()`
or the end of the process (so `trainer.evaluate()` after `train()` logs to it).

`log_model` (default: $PULSE_LOG_MODEL, else $WANDB_LOG_MODEL, as W&B's callback reads it) is
"checkpoint" (every checkpoint the Trainer saves becomes a version of the artifact `model-<run id>`,
aliased by epoch and global step) or "end" (the final model, saved under output_dir/pulse-final-model,
aliased "final"); anything else logs no model.
"""

from __future__ import annotations

import numbers
import os
from typing import Any

from transformers import TrainerCallback
from transformers.integrations import integration_utils
from transformers.integrations.integration_utils import rewrite_logs

import emitter

from . import live_run

# What the Trainer logs once, at the end: summary entries rather than a series (as W&B's callback does).
RUN_TOTALS = ("train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss", "total_flos")


class PulseCallback(TrainerCallback):
    """Logs a Trainer's config and metrics to Pulse; `init` arguments (project, name...) go to `emitter.init`."""

    def __init__(self, watch: str | None = None, log_freq: int = 100, log_model: str | None = None,
                 **init: Any) -> None:
        if watch not in (None, "false", "gradients", "parameters", "all"):
            raise ValueError(f"watch must be None, 'gradients', 'parameters' or 'all', not {watch!r}")
        if log_model is None:
            log_model = os.environ.get("PULSE_LOG_MODEL") or os.environ.get("WANDB_LOG_MODEL") or "false"
        self._log_model = log_model.lower()
        self._watch = None if watch == "false" else watch
        self._log_freq = log_freq
        self._init = init
        self._run: Any = None
        self._owned = False

    def setup(self, args: Any, state: Any, model: Any) -> None:
        """Start (or join) the run and record the config; the Trainer calls it at the start of training."""
        if not state.is_world_process_zero:
            return
        run = live_run()
        if run is None:
            init = dict(self._init)
            if state.trial_name is not None:  # hyperparameter search: one run per trial, as W&B does
                init.setdefault("name", state.trial_name)
                init.setdefault("group", args.run_name or args.output_dir)
            elif args.run_name is not None and args.run_name != args.output_dir:
                init.setdefault("name", args.run_name)
            run = emitter.init(**init)
            self._owned = True
        self._run = run
        config = args.to_dict()
        model_config = getattr(model, "config", None)
        if model_config is not None:
            config = {**(model_config if isinstance(model_config, dict) else model_config.to_dict()), **config}
        if hasattr(model, "num_parameters"):
            config["model/num_parameters"] = model.num_parameters()
        run.config.update(config, allow_val_change=True)
        if self._watch and model is not None:
            from emitter.torch_hooks import watch as watch_models

            watch_models(run, model, log=self._watch, log_freq=max(self._log_freq, state.logging_steps or 1))

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_hyper_param_search and self._owned and self._run is live_run():
            self._run.finish()  # the previous trial's run
        if self._run is None or self._run is not live_run():
            self.setup(args, state, model)

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        if self._run is None or self._run is not live_run():
            self.setup(args, state, model)
        totals = {k: v for k, v in logs.items() if k in RUN_TOTALS}
        if totals:
            self._run.summary.update(totals)
        series = rewrite_logs({k: v for k, v in logs.items() if k not in RUN_TOTALS})
        if series:
            self._run.log(series, step=state.global_step)

    def on_save(self, args, state, control, **kwargs):
        if self._log_model != "checkpoint" or not state.is_world_process_zero or self._run is None:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            self._log_model_dir(folder, [f"epoch_{round(state.epoch or 0, 2)}",
                                         f"checkpoint_global_step_{state.global_step}"])

    def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self._log_model != "end" or not state.is_world_process_zero or self._run is None or model is None:
            return
        # Kept beside the run's checkpoints, not in a temporary folder: a large file uploads from where it is.
        folder = os.path.join(args.output_dir, "pulse-final-model")
        model.save_pretrained(folder)
        if processing_class is not None and hasattr(processing_class, "save_pretrained"):
            processing_class.save_pretrained(folder)
        self._log_model_dir(folder, ["final"])

    def _log_model_dir(self, folder: str, aliases: list[str]) -> None:
        summary = self._run.summary.items()
        metadata = {k: v for k, v in summary if isinstance(v, numbers.Number) and not k.startswith("_")}
        artifact = emitter.Artifact(f"model-{self._run.id}", type="model", metadata=metadata)
        artifact.add_dir(folder)
        self._run.log_artifact(artifact, aliases=aliases)

    def on_predict(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        if self._run is None or self._run is not live_run():
            self.setup(args, state, kwargs.get("model"))
        self._run.log(rewrite_logs(metrics), step=state.global_step)


# `report_to="pulse"`: transformers looks names up in this table when a Trainer is made. It is not a
# registration API of theirs (there is none), so an unknown future layout is left alone.
_table = getattr(integration_utils, "INTEGRATION_TO_CALLBACK", None)
if isinstance(_table, dict):
    _table.setdefault("pulse", PulseCallback)
