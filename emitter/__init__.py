"""Pulse emitter: log training metrics to a Pulse server, W&B style.

Example:
    import emitter

    run = emitter.init(project="mnist", config={"lr": 0.01, "epochs": 3})
    for step in range(1000):
        emitter.log({"train/loss": loss, "train/acc": acc})
    emitter.finish()

`import emitter as wandb` runs a plain W&B script (init, config, log,
summary, define_metric, finish) unchanged. Importing this package is light:
grpc, protobuf and the standard library; torch only inside `watch()`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pulse.channel import warn_if_unreachable

from .api import Api  # noqa: F401  (the read API: wandb.Api)
from .artifacts import Artifact
from .checks import Error, UsageError, check_init, warn_once
from .config import Config, ConfigError, load_config, select_keys
from .console import console_setting
from .media import Audio, Histogram, Html, Image, Object3D, Plotly, Table, Video, plot  # noqa: F401
from .process_hooks import end_run_on_sigterm, install_process_hooks, sweep_environment, sweep_project
from .run import Run
from .settings import Settings
from .summary import Summary
from .transport import AuthError, RunBusy, check_access

__all__ = [
    "Artifact",
    "AuthError",
    "Config",
    "ConfigError",
    "Error",
    "Histogram",
    "Image",
    "Run",
    "RunBusy",
    "Settings",
    "Summary",
    "UsageError",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "log_artifact",
    "run",
    "save",
    "summary",
    "unwatch",
    "use_artifact",
    "watch",
]

run: Run | None = None
config: Config = Config()
summary: Summary | dict = {}
# W&B's reinit values: while a run is live, init() returns it, or finishes it and starts another.
REINIT_RETURNS = (None, False, "default", "return_previous")
REINIT_FINISHES = (True, "finish_previous", "create_new")  # create_new: one run at a time here
# Keyword arguments of wandb.init() that init() reads besides its own parameters.
_READ = frozenset({"settings"})

class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners and notebooks swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


_log = logging.getLogger("pulse")
if not _log.handlers:
    _handler = _StderrHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    _log.addHandler(_handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def init(project: str | None = None, name: str | None = None, group: str | None = None,
         job_type: str | None = None, tags: list[str] | None = None, notes: str | None = None,
         config: Any = None, mode: str | None = None, resume: Any = None, id: str | None = None,
         dir: str | None = None, reinit: Any = None, config_include_keys: Any = None,
         config_exclude_keys: Any = None, allow_val_change: bool | None = None,
         sync_tensorboard: bool | None = None, tensorboard: bool | None = None, **ignored: Any) -> Run:
    """Start a run and return it; `emitter.run`, `emitter.config`, `emitter.summary` follow it.

    Arguments mirror `wandb.init`. While a run is live, another init() returns it (with a
    warning) unless `reinit=True` (or "finish_previous"), which finishes it and starts a new one.
    `config_include_keys`/`config_exclude_keys` filter `config`; `allow_val_change=True` lets the
    config's values change later; `sync_tensorboard=True` logs what TensorBoard writers write
    (`emitter.tensorboard.patch()`). A W&B argument Pulse does not implement (entity, save_code,
    ...) is named in one warning and ignored. Explicit arguments beat PULSE_* environment
    variables. Raises AuthError when the server refuses the API key, RunBusy when another live
    process writes run `id`; a server that is away is no error (the run spools, with one warning
    within 2 s). Raises ValueError, naming the field, the limit and the value's size, for what the
    server would refuse: a project, name or group too long or with a newline, an id outside
    letters, digits, `-`, `_`, `.` (so none leaves PULSE_DIR), a config past 4 MiB of JSON.

    Example:
        run = emitter.init(project="cifar", config=args, tags=["baseline"])
    """
    global run
    if run is not None and run.is_live() and _keep_live_run(run, reinit, resume):
        return run
    for key, value in ignored.items():
        if key not in _READ and value is not None and value is not False:
            warn_once(f"init({key})", f"pulse: init({key}=...) is not implemented by Pulse; ignored")
    if config_include_keys or config_exclude_keys:
        config = select_keys(load_config(config), config_include_keys, config_exclude_keys)
    sweep_run_id, sweep_id, sweep_params = sweep_environment()
    if sweep_id:
        project = None if sweep_project() else project  # a sweep's runs live in its project, as in W&B
        end_run_on_sigterm()
    settings = Settings.resolve(project=project, mode=mode, dir=dir, console=console_setting(ignored.get("settings")))
    run_id = sweep_run_id or id or None
    if not run_id and resume in (True, "auto"):
        warn_once("resume=auto", f"pulse: resume={resume!r} without an id starts a new run (Pulse keeps no local "
                  "resume file); pass id= to resume a run")
    resume = _resume_mode(resume)
    check_init(project=settings.project, run_id=run_id or "x")  # before asking the server about them
    access = None
    if settings.mode == "online":
        warn_if_unreachable(settings.server, settings.tls_ca)  # on its own thread: said once, within 2 s
        access = check_access(settings.server, settings.project, settings.api_key, settings.tls_ca,
                              run_id=run_id or "")  # with an id, the server also says if it is live elsewhere
    start_step = _resumed_step(resume, run_id, settings.project, access)
    install_process_hooks()
    run = Run(settings, run_id=run_id, name=name, group=group or "",
              job_type=job_type or "", tags=tags, notes=notes or "", config=config,
              resume=start_step is not None, sweep_id=sweep_id, sweep_params=sweep_params,
              start_step=start_step or 0, max_batch_bytes=access.max_batch_bytes if access else 0)
    if allow_val_change:
        run.config.allow_changes()
    globals()["config"] = run.config
    globals()["summary"] = run.summary
    if sync_tensorboard or tensorboard:
        from .tensorboard import patch

        patch()
    return run


def _keep_live_run(live: Run, reinit: Any, resume: Any) -> bool:
    """W&B's reinit rules for init() while `live` runs: True to return it, else it is finished now."""
    if reinit in REINIT_RETURNS:
        if resume == "must":
            raise UsageError("resume='must' while a run is live: finish it first (run.finish()), or pass reinit=True")
        _log.warning("pulse: init() while run %s is live returns that run; pass reinit=True to finish it and "
                     "start a new one", live.id)
        return True
    if reinit not in REINIT_FINISHES:
        raise UsageError(f"reinit must be True, False, 'default', 'return_previous', 'finish_previous' or "
                         f"'create_new', not {reinit!r}")
    if reinit == "create_new":
        warn_once("reinit=create_new", "pulse: one run at a time per process: reinit='create_new' finishes the "
                  "live run first, as reinit='finish_previous' does")
    live.finish()
    return False


def _run_ended(ended: Run) -> None:
    """`ended.finish()` ran: if it was the current run, there is none now (W&B's `wandb.run` is None)."""
    global run, config, summary
    if run is ended:
        run, config, summary = None, Config(), {}


def _resume_mode(resume: Any) -> str:
    """W&B's resume values: True is "allow"; False/None is "never" only in name (a new run)."""
    if resume in (None, False, ""):
        return ""
    if resume is True or resume == "auto":
        return "allow"
    if resume not in ("allow", "must", "never"):
        raise ValueError(f"resume must be True, 'allow', 'must', 'never' or 'auto', not {resume!r}")
    return resume


def _resumed_step(resume: str, run_id: str | None, project: str, access) -> int | None:
    """The step a resumed run continues from, or None for a new run; refuse what W&B refuses."""
    if not resume:
        return None
    exists = access is not None and access.run_exists
    if resume == "never":
        if exists:
            raise ValueError(f"run {run_id!r} already exists in project {project!r} and resume='never'")
        return None
    if not run_id:
        if resume == "allow":
            return None  # W&B starts a new run
        raise ValueError(f"resume={resume!r} needs the run's id: init(id=..., resume={resume!r})")
    if access is None:
        _log.warning("pulse: cannot reach the server to resume run %s; its steps restart at 0", run_id)
        return 0
    if not exists:
        if resume == "must":
            raise ValueError(f"resume='must' but run {run_id!r} does not exist in project {project!r}")
        return None
    return access.next_step


def _current() -> Run:
    if run is None:
        raise RuntimeError("call emitter.init() before logging")
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """Log metrics to the current run; see `Run.log`."""
    _current().log(data, step=step, commit=commit)


def define_metric(name: str, step_metric: str | None = None, summary: str | None = None,
                  goal: str | None = None, hidden: bool = False, **kwargs: Any):
    """Define how a metric is summarised; see `Run.define_metric`."""
    return _current().define_metric(name, step_metric=step_metric, summary=summary, goal=goal,
                                    hidden=hidden, **kwargs)


def alert(title: str, text: str, level: str = "INFO", **_: Any) -> None:
    """Record an alert on the current run."""
    _current().alert(title, text, level)


def watch(models: Any, criterion: Any = None, log: str | None = "gradients", log_freq: int = 1000,
          idx: int | None = None, log_graph: bool = False, health: Any = None) -> None:
    """Log a torch model's gradients (and/or parameters) every `log_freq` backward passes.

    Per parameter: a 64-bin histogram (`gradients/<name>`, `parameters/<name>`) and the L2 norm
    (`grad_norm/<name>`, `param_norm/<name>`), computed on the parameter's device; they attach to
    the step your next `log()` commits. `log` is "gradients", "parameters", "all" or None;
    `models` is a module or a list of them; `log_graph=True` stores the module graph once.
    Gradient health flags NaN/Inf, exploding and vanishing gradients as alerts and in
    `run.summary["gradient_health"]`; `health` tunes it (a dict of `HealthThresholds` fields)
    or turns it off (False). Imports torch; `import emitter` does not.

    Example:
        emitter.watch(model, log="all", log_freq=100, log_graph=True)
    """
    from .torch_hooks import watch as watch_models

    watch_models(_current(), models, criterion=criterion, log=log, log_freq=log_freq, idx=idx,
                 log_graph=log_graph, health=health)


def unwatch(models: Any = None) -> None:
    """Remove the hooks `watch()` put on `models` (a module or a list; all watched models when None)."""
    hooks = sys.modules.get("emitter.torch_hooks")  # nothing to remove if watch() never ran
    if hooks is not None:
        hooks.unwatch(models)


def log_artifact(artifact_or_path: Any, name: str | None = None, type: str | None = None,
                 aliases: list[str] | None = None, tags: list[str] | None = None) -> Artifact:
    """Log an artifact to the current run; see `Run.log_artifact`."""
    return _current().log_artifact(artifact_or_path, name=name, type=type, aliases=aliases, tags=tags)


def use_artifact(artifact_or_name: Any, type: str | None = None, aliases: list[str] | None = None,
                 use_as: str | None = None) -> Artifact:
    """Use an artifact version as the current run's input; see `Run.use_artifact`."""
    return _current().use_artifact(artifact_or_name, type=type, aliases=aliases, use_as=use_as)


def save(glob_str: Any, base_path: Any = None, policy: str = "live") -> list[str]:
    """Store files with the current run; see `Run.save`."""
    return _current().save(glob_str, base_path=base_path, policy=policy)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """Finish the current run (flush, wait for acks, close); a no-op without one."""
    global run
    if run is not None:
        run.finish(exit_code=exit_code, quiet=bool(quiet))
        run = None  # a forked child's finish() leaves its parent's run alone, but forgets it too


from .sweeps import agent, sweep  # noqa: E402, F401  (wandb.sweep, wandb.agent)
