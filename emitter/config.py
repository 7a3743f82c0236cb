"""`run.config`: a dict with attribute access, filled from a dict, an argparse Namespace or a YAML file.

As in W&B, a key keeps its value once set: changing it raises `ConfigError` unless
`allow_val_change=True`; setting the same value again, or a new key, is always fine.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config key was changed without `allow_val_change=True` (W&B's `config_util.ConfigError`)."""


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


def select_keys(items: Mapping[str, Any], include: Collection[str] | None = None,
                exclude: Collection[str] | None = None) -> dict[str, Any]:
    """`init(config_include_keys=..., config_exclude_keys=...)`: keep only `include`, or drop `exclude`.

    As in W&B the two are exclusive, and they filter the config given to `init()` only.

    Example:
        select_keys(vars(args), exclude=["data_dir"])
    """
    if include and exclude:
        raise ValueError("config_include_keys and config_exclude_keys are exclusive: give one of them")
    for name, keys in (("config_include_keys", include), ("config_exclude_keys", exclude)):
        if isinstance(keys, str):  # a lone string would filter by its characters
            raise TypeError(f"{name} must be a list of keys, not the string {keys!r}")
    if include:
        return {k: v for k, v in items.items() if k in include}
    if exclude:
        return {k: v for k, v in items.items() if k not in exclude}
    return dict(items)


def _differs(old: Any, new: Any) -> bool:
    try:
        return bool(old != new)
    except (TypeError, ValueError):  # arrays compare element-wise: call that a change
        return True


class Config:
    """Run configuration: `config["lr"]` and `config.lr` both work.

    Example:
        run = emitter.init(project="mnist", config={"lr": 0.1})
        run.config.update({"batch_size": 64})
        run.config.update({"lr": 0.05}, allow_val_change=True)
        lr = emitter.config.lr
    """

    def __init__(self, on_change: Callable[[dict[str, Any]], None] | None = None) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_locked", set())
        object.__setattr__(self, "_on_change", on_change)
        object.__setattr__(self, "_allow_val_change", False)

    def allow_changes(self, allowed: bool = True) -> None:
        """Let later updates change values without `allow_val_change=True` (`init(allow_val_change=True)`)."""
        object.__setattr__(self, "_allow_val_change", bool(allowed))

    def update(self, source: Any = None, allow_val_change: bool | None = None, **kwargs: Any) -> None:
        """Add keys from a dict, Namespace or YAML path; changing a key's value needs `allow_val_change=True`.

        Keys a sweep set are kept (the script's own defaults must not override them). A refused
        change raises before anything of this update is applied.
        """
        items = load_config(source)
        items.update(kwargs)
        items = {k: v for k, v in items.items() if k not in self._locked}
        if not (self._allow_val_change if allow_val_change is None else allow_val_change):
            for key, value in items.items():
                if key in self._items and _differs(self._items[key], value):
                    raise ConfigError(f"config[{key!r}] is already {self._items[key]!r}, not {value!r}; "
                                      "pass allow_val_change=True to config.update() to change it")
        if items:
            self._items.update(items)
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
