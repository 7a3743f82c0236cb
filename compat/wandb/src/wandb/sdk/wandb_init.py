"""`wandb.init()`: W&B's arguments and environment, mapped onto `emitter.init()`.

Precedence: explicit arguments, then `settings=`, then PULSE_* variables (the emitter reads
those), then WANDB_* variables. The run-lifetime rules (reinit, resume without an id), the
config filters, allow_val_change, sync_tensorboard and the one warning for each argument Pulse
does not implement are the emitter's own.
"""

from __future__ import annotations

import os
from typing import Any

import emitter
from emitter.checks import warn_once

from .. import env
from ..errors import AuthenticationError, UsageError
from .wandb_run import Run, current
from .wandb_settings import Settings

MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
         "disabled": "disabled"}


def init(*, job_type: str | None = None, dir: Any = None, config: Any = None, project: str | None = None,
         reinit: Any = None, tags: Any = None, group: str | None = None, name: str | None = None,
         notes: str | None = None, config_exclude_keys: Any = None, config_include_keys: Any = None,
         mode: str | None = None, allow_val_change: bool | None = None, resume: Any = None,
         id: str | None = None, sync_tensorboard: bool | None = None, tensorboard: bool | None = None,
         settings: Any = None, **not_in_pulse: Any) -> Run:
    """Start a run on the Pulse server (PULSE_SERVER) and return it, as `wandb.init` does.

    While a run is active, a second call returns it unless `reinit=True` (or "finish_previous").
    `resume="allow"` without an id starts a new run. `dir` holds Pulse's local files in
    `<dir>/.pulse` unless PULSE_DIR says where. Arguments without a Pulse meaning (entity,
    save_code, ...) are ignored with one warning each.

    Example:
        run = wandb.init(project="cifar", config=args, tags=["baseline"])
    """
    explicit = {"job_type": job_type, "dir": dir, "project": project, "tags": tags, "group": group,
                "name": name, "notes": notes, "mode": mode, "allow_val_change": allow_val_change,
                "resume": resume, "id": id, "sync_tensorboard": sync_tensorboard or tensorboard}
    if settings is not None:
        settings = settings if isinstance(settings, Settings) else Settings(**dict(settings))
        _merge_settings(explicit, settings)
    _from_environment(explicit)
    try:
        emitter.init(project=explicit["project"], name=explicit["name"], group=explicit["group"],
                     job_type=explicit["job_type"], tags=_tags(explicit["tags"]), notes=explicit["notes"],
                     config=config, mode=_mode(explicit["mode"]), resume=explicit["resume"], id=explicit["id"],
                     dir=_pulse_dir(explicit["dir"]), reinit=reinit, config_include_keys=config_include_keys,
                     config_exclude_keys=config_exclude_keys, allow_val_change=explicit["allow_val_change"],
                     sync_tensorboard=explicit["sync_tensorboard"], settings=settings, **not_in_pulse)
    except emitter.AuthError as error:
        raise AuthenticationError(str(error)) from error
    return current()


def _merge_settings(explicit: dict[str, Any], settings: Settings) -> None:
    arguments, unknown = settings.init_arguments()
    for key, value in arguments.items():
        if explicit.get(key) is None:
            explicit[key] = value
    for field in unknown:
        warn_once(f"Settings.{field}", f"pulse: wandb.Settings({field}=...) is not implemented by Pulse; ignored")


def _from_environment(explicit: dict[str, Any]) -> None:
    """WANDB_* variables fill what neither the arguments nor PULSE_* variables set."""
    environ = os.environ
    pulse_reads = {"project": "PULSE_PROJECT", "mode": "PULSE_MODE", "dir": "PULSE_DIR"}
    names = {"project": env.PROJECT, "mode": env.MODE, "dir": env.DIR, "name": env.NAME, "notes": env.NOTES,
             "tags": env.TAGS, "group": env.RUN_GROUP, "job_type": env.JOB_TYPE, "id": env.RUN_ID,
             "resume": env.RESUME}
    for key, variable in names.items():
        if explicit.get(key) is None and not environ.get(pulse_reads.get(key, "")) and environ.get(variable):
            explicit[key] = environ[variable]
    if explicit["mode"] is None and not environ.get("PULSE_MODE") and env.is_disabled():
        explicit["mode"] = "disabled"


def _mode(mode: str | None) -> str | None:
    if mode is None:
        return None
    if mode == "shared":
        warn_once("mode='shared'", "pulse: mode='shared' (several writers to one run) is not implemented "
                  "by Pulse; logging online")
        return "online"
    if mode not in MODES:
        raise UsageError(f"mode must be one of {sorted(MODES)}, not {mode!r}")
    return MODES[mode]


def _pulse_dir(directory: Any) -> str | None:
    if directory is None or os.environ.get("PULSE_DIR"):
        return None  # PULSE_DIR is where the user wants Pulse's files, whatever the program told W&B
    return os.path.join(os.fspath(directory), ".pulse")


def _tags(tags: Any) -> list[str] | None:
    if tags is None:
        return None
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]  # WANDB_TAGS is comma-separated
    return list(tags)
