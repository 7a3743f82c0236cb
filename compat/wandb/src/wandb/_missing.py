"""W&B features Pulse does not have yet: each raises an error that names the issue bringing it.

When the emitter gains one (`emitter.Table`, `emitter.Artifact`, ...), `wandb` forwards to it instead.
"""

from __future__ import annotations

from typing import Any

import emitter

from .errors import UnsupportedError

ISSUES = {
    14: "artifacts, tables, rich media and the read API",
    16: "sweeps from Python",
}


class NotInPulse(UnsupportedError, NotImplementedError):
    """A W&B feature Pulse does not provide yet."""


def _message(name: str, issue: int) -> str:
    return (f"wandb.{name} is not in Pulse yet (Pulse issue {issue}: {ISSUES[issue]}); "
            "the rest of this program logs to Pulse as usual")


def feature(name: str, issue: int) -> Any:
    """`emitter.<name>` when the emitter has it, else a stand-in that raises NotInPulse when used."""
    provided = getattr(emitter, name, None)
    if provided is not None:
        return provided
    message = _message(name, issue)

    if name[:1].isupper():
        class Missing:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                raise NotInPulse(message)

        Missing.__name__ = Missing.__qualname__ = name
        Missing.__doc__ = message
        return Missing

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise NotInPulse(message)

    missing.__name__ = missing.__qualname__ = name
    missing.__doc__ = message
    return missing
