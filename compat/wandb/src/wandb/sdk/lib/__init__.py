"""`wandb.sdk.lib`: what frameworks import from it (Lightning: `RunDisabled`)."""

from __future__ import annotations

from . import config_util


class RunDisabled:
    """W&B's stand-in for a run in disabled mode. Pulse returns a real `Run` in every mode
    (mode="disabled" logs nothing), so nothing is an instance of this; it exists for isinstance checks."""


__all__ = ["RunDisabled", "config_util"]
