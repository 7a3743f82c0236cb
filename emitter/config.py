"""`run.config`: a dict with attribute access, filled from a dict, an argparse Namespace or a YAML file."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any


def load_config(source: Any) -> dict[str, Any]:
    """A plain dict from a dict, an argparse.Namespace, or a YAML file path.

    YAML files may be flat (`lr: 0.1`) or in W&B's config-defaults form
    (`lr: {value: 0.1, desc: ...}`).
    """
    if source is None:
        return {}
    if isinstance(source, argparse.Namespace):
        return dict(vars(source))
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (str, Path)):
        import yaml

        with open(source) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {source} must hold a mapping, not {type(loaded).__name__}")
        return {k: v["value"] if isinstance(v, dict) and "value" in v else v
                for k, v in loaded.items() if k != "wandb_version"}
    raise TypeError(f"config must be a dict, an argparse.Namespace or a YAML path, "
                    f"not {type(source).__name__}")


class Config:
    """Run configuration: `config["lr"]` and `config.lr` both work.

    Example:
        run = emitter.init(project="mnist", config={"lr": 0.1})
        run.config.update({"batch_size": 64})
        lr = emitter.config.lr
    """

    def __init__(self, on_change: Callable[[dict[str, Any]], None] | None = None) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_locked", set())
        object.__setattr__(self, "_on_change", on_change)

    def update(self, source: Any = None, allow_val_change: bool = True, **kwargs: Any) -> None:
        items = load_config(source)
        items.update(kwargs)
        changed = False
        for key, value in items.items():
            if key in self._locked:
                continue  # set by a sweep: the script's own defaults must not override it
            if not allow_val_change and key in self._items and self._items[key] != value:
                raise ValueError(f"config[{key!r}] is already {self._items[key]!r}; "
                                 "pass allow_val_change=True to change it")
            self._items[key] = value
            changed = True
        if changed:
            self._changed()

    def lock(self, items: Mapping[str, Any]) -> None:
        """Set values that later updates cannot override (sweep parameters)."""
        self._items.update(items)
        self._locked.update(items)
        self._changed()

    def setdefaults(self, items: Mapping[str, Any]) -> None:
        fresh = {k: v for k, v in items.items() if k not in self._items}
        if fresh:
            self._items.update(fresh)
            self._changed()

    def as_dict(self) -> dict[str, Any]:
        return dict(self._items)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(dict(self._items))

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __getattr__(self, key: str) -> Any:
        try:
            return self._items[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def keys(self):
        return self._items.keys()

    def items(self):
        return self._items.items()

    def values(self):
        return self._items.values()

    def __repr__(self) -> str:
        return f"Config({self._items!r})"
