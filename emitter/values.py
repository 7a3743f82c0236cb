"""What `log()` accepts as a value: Python numbers and bools, numpy scalars, 0-dim tensors; and
W&B's reading of the rest (`expand`): nested dicts, number sequences and arrays."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

# Types the sender encodes as they are. The caller's thread checks only this,
# so the common case costs one pass of `type()` over the values.
PLAIN = frozenset({float, int, bool})
HISTOGRAM_BINS = 32  # W&B's bins for an array it turns into a histogram (wandb.util.maybe_compress_history)


def is_tensor(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


def expand(values: dict, prefix: str = "") -> dict:
    """W&B's reading of a `log()` dict, on the caller's thread for a dict that is not all plain:
    a nested dict becomes `outer.inner` keys (W&B joins a nested key's path with "."), a
    sequence or array of numbers becomes a Histogram, and a one-element array or tensor a scalar.

    Example:
        expand({"train": {"loss": 0.5}, "w": [1.0, 2.0]})  # {"train.loss": 0.5, "w": Histogram}
    """
    out: dict = {}
    for key, value in values.items():
        name = f"{prefix}{key}" if prefix else key  # a top-level key that is not a string is refused later
        if type(value) in PLAIN:
            out[name] = value
        elif isinstance(value, Mapping):
            out.update(expand(value, prefix=f"{name}."))
        else:
            out[name] = _as_w_and_b(value)
    return out


def _as_w_and_b(value: Any) -> Any:
    if type(value) in (list, tuple):
        if value and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
            return _histogram(value)
        return value  # a list of media, or what the sender refuses by key
    ndim, dtype = getattr(value, "ndim", None), getattr(value, "dtype", None)
    if not isinstance(ndim, int) or ndim < 1 or dtype is None or not _numeric(dtype):
        return value
    size = value.numel() if is_tensor(value) else getattr(value, "size", None)
    if size == 1:
        return value.reshape(())  # a scalar, read by the sender (a tensor is copied by `snapshot`)
    if isinstance(size, int) and size > 1:
        return _histogram(value)
    return value


def _histogram(value: Any) -> Any:
    from .media import Histogram  # media imports this module

    return Histogram(value, num_bins=HISTOGRAM_BINS)


def _numeric(dtype: Any) -> bool:
    kind = getattr(dtype, "kind", None)
    if kind is not None:  # numpy
        return kind in "iuf"
    return bool(getattr(dtype, "is_floating_point", False)) or "int" in str(dtype)  # torch


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
