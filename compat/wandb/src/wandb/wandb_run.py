"""`wandb.wandb_run`: the older import path of `Run` (Lightning imports it from here)."""

from .sdk.wandb_run import Run

__all__ = ["Run"]
