"""`wandb.sdk.lib.config_util`: `ConfigError` is the emitter's, so `except ConfigError` catches what Pulse raises."""

from emitter.config import ConfigError

__all__ = ["ConfigError"]
