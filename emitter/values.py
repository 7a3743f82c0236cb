"""What `log()` accepts as a value: Python numbers and bools, numpy scalars, 0-dim tensors."""

from __future__ import annotations

import numbers
from typing import Any

# Types the sender encodes as they are. The caller's thread checks only this,
# so the common case costs one pass of `type()` over the values.
PLAIN = frozenset({float, int, bool})


def is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def snapshot(values: dict) -> dict:
    """On the caller's thread: freeze tensors, which the training loop may change in place.

    `clone()` is asynchronous on a GPU, so this never waits for the device; the
    sender calls `.item()` later.
    """
    return {k: v.detach().clone() if is_tensor(v) else v for k, v in values.items()}


def to_float(value: Any) -> float:
    """The value as a float, or TypeError naming why it is not a scalar."""
    if type(value) in PLAIN:
        return float(value)
    if is_tensor(value):
        if value.dim() != 0:
            raise TypeError(f"tensor of shape {tuple(value.shape)} (only 0-dim tensors are scalars)")
        return float(value.item())
    if isinstance(value, numbers.Real):
        return float(value)  # numpy floats and ints, Decimal, Fraction
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == () \
            and getattr(value, "dtype", None) is not None and value.dtype.kind in "biuf":
        return float(value)  # numpy bool_ and 0-dim arrays
    raise TypeError(type(value).__name__)
