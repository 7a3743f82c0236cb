"""`wandb.errors`: the exception classes W&B programs and frameworks catch."""

from __future__ import annotations

from emitter import AuthError, Error, UsageError  # what the emitter raises is what W&B programs catch

__all__ = ["AuthenticationError", "CommError", "Error", "UnsupportedError", "UsageError"]


class CommError(Error):
    """The server could not be reached or answered with an error."""


class UnsupportedError(UsageError):
    """A W&B feature Pulse does not provide."""


class AuthenticationError(Error, AuthError):
    """The Pulse server refused the API key (PULSE_API_KEY); also an `emitter.AuthError`."""
