"""W&B's Python API on Pulse: an unchanged `import wandb` program logs to a Pulse server.

Install Pulse, then this package (`pip install ./compat/wandb`), and run the program as it is:
`wandb.init/log/finish`, the Hugging Face Trainer's `report_to="wandb"`, Lightning's `WandbLogger`
and `sync_tensorboard=True` send to PULSE_SERVER. None of W&B's code is here: every call goes to
`emitter`. W&B features Pulse does not have yet (artifacts, tables, sweeps from Python) raise an
error naming the Pulse issue that brings them.

Example:
    import wandb

    run = wandb.init(project="mnist", config={"lr": 0.01})
    wandb.log({"loss": 0.25})
    wandb.finish()
"""

from __future__ import annotations

import enum
import sys
from typing import Any

try:
    import emitter
except ImportError as error:  # pragma: no cover - an install mistake, said plainly
    raise ImportError("this `wandb` is Pulse's W&B compatibility package and needs Pulse itself: "
                      "pip install pulse-tracker from the Pulse repository (`pip install .` at its top)") from error

from emitter import Histogram, Image
from emitter.checks import warn_once

from . import _missing, env, errors, sdk, tensorboard, util, wandb_run
from .errors import Error
from .sdk.wandb_init import init
from .sdk.wandb_run import Run, current
from .sdk.wandb_settings import Settings

__version__ = "0.31.0+pulse"

__all__ = [
    "AlertLevel", "Api", "Artifact", "Audio", "Error", "Histogram", "Html", "Image", "Object3D", "Run",
    "Settings", "Table", "Video", "agent", "alert", "config", "define_metric", "env", "errors", "finish",
    "init", "log", "log_artifact", "login", "require", "run", "save", "sdk", "setup", "summary", "sweep",
    "teardown", "tensorboard", "termerror", "termlog", "termwarn", "unwatch", "use_artifact", "util",
    "watch", "wandb_run",
]


class AlertLevel(enum.Enum):
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


def __getattr__(name: str) -> Any:
    """`wandb.run`, `wandb.config`, `wandb.summary` follow the active run, as in W&B."""
    if name == "run":
        return current()
    if name == "config":
        return emitter.config
    if name == "summary":
        return emitter.summary
    raise AttributeError(f"module 'wandb' (Pulse's W&B compatibility package) has no attribute {name!r}")


def _active(call: str) -> Run:
    run = current()
    if run is None:
        raise Error(f"You must call wandb.init() before wandb.{call}()")
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None, sync: bool | None = None) -> None:
    """Log metrics to the active run; see `Run.log`."""
    _active("log").log(data, step=step, commit=commit, sync=sync)


def define_metric(name: str, step_metric: Any = None, step_sync: bool | None = None, hidden: bool | None = None,
                  summary: str | None = None, goal: str | None = None, overwrite: bool | None = None) -> Any:
    """See `Run.define_metric`."""
    return _active("define_metric").define_metric(name, step_metric=step_metric, step_sync=step_sync,
                                                  hidden=hidden, summary=summary, goal=goal, overwrite=overwrite)


def watch(models: Any, criterion: Any = None, log: str | None = "gradients", log_freq: int = 1000,
          idx: int | None = None, log_graph: bool = False) -> None:
    """See `emitter.watch`."""
    _active("watch").watch(models, criterion=criterion, log=log, log_freq=log_freq, idx=idx, log_graph=log_graph)


def unwatch(models: Any = None) -> None:
    emitter.unwatch(models)


def alert(title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
    _active("alert").alert(title, text, level=level, wait_duration=wait_duration)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the active run; a no-op without one."""
    run = current()
    if run is not None:
        run.finish(exit_code=exit_code, quiet=quiet)


def login(key: str | None = None, relogin: bool | None = None, host: str | None = None, **_: Any) -> bool:
    """Nothing to log in to: Pulse reads its key from PULSE_API_KEY. A W&B key given here is neither
    used nor sent anywhere (it is W&B's credential, not the Pulse server's)."""
    if key or host:
        warn_once("login", "pulse: wandb.login(key=/host=) is not used: Pulse authenticates "
                  "with PULSE_API_KEY against PULSE_SERVER")
    return True


def require(requirement: Any = None, experiment: Any = None) -> None:
    """W&B's feature flags (Lightning asks for "service"): Pulse has one way of running."""


def setup(settings: Any = None) -> None:
    """W&B starts its service process here; Pulse has none."""


def teardown(exit_code: int | None = None) -> None:
    finish(exit_code=exit_code)


_said: set[str] = set()


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print a line to stderr as W&B does (`wandb: ...`); WANDB_SILENT silences it."""
    _term(string, "", newline, repeat, prefix)


def termwarn(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    _term(string, "WARNING ", newline, repeat, prefix)


def termerror(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    _term(string, "ERROR ", newline, repeat, prefix)


def _term(string: str, level: str, newline: bool, repeat: bool, prefix: bool) -> None:
    if env.is_silent() and not level.startswith("ERROR"):
        return
    if not repeat:
        if string in _said:
            return
        _said.add(string)
    head = f"wandb: {level}" if prefix else ""
    sys.stderr.write("\n".join(head + line for line in str(string).split("\n")) + ("\n" if newline else ""))


Table = _missing.feature("Table", 14)
Artifact = _missing.feature("Artifact", 14)
Audio = _missing.feature("Audio", 14)
Video = _missing.feature("Video", 14)
Html = _missing.feature("Html", 14)
Object3D = _missing.feature("Object3D", 14)
Api = _missing.feature("Api", 14)
log_artifact = _missing.feature("log_artifact", 14)
use_artifact = _missing.feature("use_artifact", 14)
log_model = _missing.feature("log_model", 14)
use_model = _missing.feature("use_model", 14)
link_model = _missing.feature("link_model", 14)
save = _missing.feature("save", 14)
sweep = _missing.feature("sweep", 16)
agent = _missing.feature("agent", 16)
