"""`wandb.init()`: W&B's arguments, environment and run-lifetime rules, mapped onto `emitter.init()`.

Precedence: explicit arguments, then `settings=`, then PULSE_* variables (the emitter reads
those), then WANDB_* variables. An argument Pulse does not implement is named in one warning.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import emitter
from emitter.config import load_config, select_keys

from .. import env
from ..errors import AuthenticationError, UsageError
from .wandb_run import Run, current
from .wandb_settings import Settings

log = logging.getLogger("pulse")
MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
         "disabled": "disabled"}
REINIT_RETURNS = (None, False, "default", "return_previous")
REINIT_FINISHES = (True, "finish_previous", "create_new")
_warned: set[str] = set()


def init(*, job_type: str | None = None, dir: Any = None, config: Any = None, project: str | None = None,
         entity: str | None = None, reinit: Any = None, tags: Any = None, group: str | None = None,
         name: str | None = None, notes: str | None = None, config_exclude_keys: Any = None,
         config_include_keys: Any = None, mode: str | None = None, allow_val_change: bool | None = None,
         resume: Any = None, id: str | None = None, sync_tensorboard: bool | None = None,
         tensorboard: bool | None = None, settings: Any = None, **not_in_pulse: Any) -> Run:
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
    if entity is not None:
        not_in_pulse["entity"] = entity
    if settings is not None:
        _merge_settings(explicit, settings)
    _warn_not_in_pulse(not_in_pulse)
    _from_environment(explicit)

    live = current()
    if live is not None:
        if reinit in REINIT_RETURNS:
            log.warning("pulse: wandb.init() while run %s is active returns that run; pass reinit=True "
                        "to finish it and start a new one", live.id)
            return live
        if reinit not in REINIT_FINISHES:
            raise UsageError(f"reinit must be True, False, 'default', 'return_previous', 'finish_previous' "
                             f"or 'create_new', not {reinit!r}")
        if reinit == "create_new":
            _warn_once("reinit='create_new'", "pulse: one run per process: reinit='create_new' finishes "
                       "the active run first, as reinit='finish_previous' does")
        live.finish()

    run_config = config
    if config_include_keys or config_exclude_keys:
        run_config = select_keys(load_config(config), config_include_keys, config_exclude_keys)
    try:
        emitter.init(project=explicit["project"], name=explicit["name"], group=explicit["group"],
                     job_type=explicit["job_type"], tags=_tags(explicit["tags"]), notes=explicit["notes"],
                     config=run_config, mode=_mode(explicit["mode"]), resume=_resume(explicit),
                     id=explicit["id"], dir=_pulse_dir(explicit["dir"]))
    except emitter.AuthError as error:
        raise AuthenticationError(str(error)) from error
    run = current()
    if explicit["allow_val_change"]:
        run.config.allow_changes()
    if explicit["sync_tensorboard"]:
        from emitter import tensorboard as tensorboard_sync

        tensorboard_sync.patch()
    return run


def _merge_settings(explicit: dict[str, Any], settings: Any) -> None:
    if not isinstance(settings, Settings):
        settings = Settings(**dict(settings))
    arguments, unknown = settings.init_arguments()
    for key, value in arguments.items():
        if explicit.get(key) is None:
            explicit[key] = value
    for field in unknown:
        _warn_once(f"Settings.{field}", f"pulse: wandb.Settings({field}=...) is not implemented by Pulse; ignored")


def _warn_not_in_pulse(arguments: dict[str, Any]) -> None:
    for key, value in arguments.items():
        if value is not None and value is not False:
            _warn_once(key, f"pulse: wandb.init({key}=...) is not implemented by Pulse; ignored")


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


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
        _warn_once("mode='shared'", "pulse: mode='shared' (several writers to one run) is not implemented "
                   "by Pulse; logging online")
        return "online"
    if mode not in MODES:
        raise UsageError(f"mode must be one of {sorted(MODES)}, not {mode!r}")
    return MODES[mode]


def _resume(explicit: dict[str, Any]) -> Any:
    """W&B starts a new run for resume="allow" without an id; True/"auto" without one would look for
    W&B's local resume file, which Pulse does not keep."""
    resume = explicit["resume"]
    if explicit["id"] or resume in (None, False, "never", "must"):
        return resume
    if resume in (True, "auto"):
        _warn_once("resume=auto", f"pulse: resume={resume!r} without an id starts a new run (Pulse keeps no "
                   "local resume file); pass id= to resume a run")
    return None


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
