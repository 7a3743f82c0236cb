"""`wandb.errors`: the exception classes W&B programs and frameworks catch."""

from __future__ import annotations

from emitter import AuthError


class Error(Exception):
    """Base of W&B's errors."""

    def __init__(self, message: str = "", context: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.context = context


class CommError(Error):
    """The server could not be reached or answered with an error."""


class UsageError(Error):
    """The API was called in a way it does not support (for example `log()` after `finish()`)."""


class UnsupportedError(UsageError):
    """A W&B feature Pulse does not provide."""


class AuthenticationError(Error, AuthError):
    """The Pulse server refused the API key (PULSE_API_KEY); also an `emitter.AuthError`."""
