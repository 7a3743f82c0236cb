"""`wandb.env`: the WANDB_* variable names, and the setters transformers' hyperparameter search calls.

`wandb.init()` reads these when no argument (and no PULSE_* variable) says otherwise.
"""

from __future__ import annotations

import os

PROJECT = "WANDB_PROJECT"
ENTITY = "WANDB_ENTITY"
MODE = "WANDB_MODE"
DIR = "WANDB_DIR"
NAME = "WANDB_NAME"
NOTES = "WANDB_NOTES"
TAGS = "WANDB_TAGS"
RUN_GROUP = "WANDB_RUN_GROUP"
JOB_TYPE = "WANDB_JOB_TYPE"
RUN_ID = "WANDB_RUN_ID"
RESUME = "WANDB_RESUME"
DISABLED = "WANDB_DISABLED"
SILENT = "WANDB_SILENT"
API_KEY = "WANDB_API_KEY"
SWEEP_ID = "WANDB_SWEEP_ID"


def get_project(default: str | None = None, env: dict | None = None) -> str | None:
    return (env or os.environ).get(PROJECT, default)


def get_entity(default: str | None = None, env: dict | None = None) -> str | None:
    return (env or os.environ).get(ENTITY, default)


def set_project(value: str, env: dict | None = None) -> None:
    (os.environ if env is None else env)[PROJECT] = value


def set_entity(value: str, env: dict | None = None) -> None:
    (os.environ if env is None else env)[ENTITY] = value


def is_disabled(env: dict | None = None) -> bool:
    return (env or os.environ).get(DISABLED, "").lower() in ("1", "true", "yes")


def is_silent(env: dict | None = None) -> bool:
    return (env or os.environ).get(SILENT, "").lower() in ("1", "true", "yes")
