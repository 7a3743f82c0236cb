"""`wandb.util`: the few helpers framework integrations call."""

from __future__ import annotations

import importlib
import secrets
from types import ModuleType

from emitter.run import new_run_id


def generate_id(length: int = 8) -> str:
    """A run id as W&B makes them: lowercase letters and digits."""
    if length == 8:
        return new_run_id()
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def get_module(name: str, required: str | None = None, lazy: bool = True) -> ModuleType | None:
    """The module `name`, or None when it is not installed (ImportError with `required` as the message)."""
    del lazy
    try:
        return importlib.import_module(name)
    except ImportError:
        if required:
            raise ImportError(required) from None
        return None
