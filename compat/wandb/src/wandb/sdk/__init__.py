"""`wandb.sdk`: where frameworks import W&B's classes from (`wandb.sdk.wandb_run.Run`, `wandb.sdk.lib...`)."""

from emitter import Config, Summary

from . import lib, wandb_run, wandb_settings
from .wandb_init import init
from .wandb_run import Run
from .wandb_settings import Settings

__all__ = ["Config", "Run", "Settings", "Summary", "init", "lib", "wandb_run", "wandb_settings"]
