"""`wandb.Settings`: the fields Pulse acts on become `init()` arguments; W&B's process tuning is accepted."""

from __future__ import annotations

from typing import Any

# Settings fields and the init() argument each one stands for.
AS_INIT_ARGUMENT = {
    "mode": "mode", "project": "project", "run_name": "name", "run_id": "id", "run_group": "group",
    "run_job_type": "job_type", "run_notes": "notes", "run_tags": "tags", "root_dir": "dir",
    "resume": "resume", "sync_tensorboard": "sync_tensorboard", "allow_val_change": "allow_val_change",
}
# How W&B's own processes run and talk: nothing to do with what Pulse stores, so accepted quietly.
W_AND_B_PROCESS = frozenset({
    "start_method", "init_timeout", "console", "silent", "quiet", "show_info", "show_warnings",
    "show_errors", "disable_git", "disable_code", "disable_job_creation", "save_code", "program",
    "_disable_stats", "_disable_meta", "_service_wait", "x_disable_stats", "x_disable_meta",
    "x_service_wait", "x_disable_service", "_disable_service", "login_timeout", "base_url", "api_key",
    "anonymous", "entity", "heartbeat_seconds",
})


class Settings:
    """`wandb.Settings(...)`: keeps what it is given; `init(settings=...)` reads it.

    Example:
        wandb.init(settings=wandb.Settings(start_method="thread", run_name="baseline"))
    """

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def init_arguments(self) -> tuple[dict[str, Any], list[str]]:
        """(init() arguments these settings stand for, names of fields Pulse does not implement)."""
        arguments, unknown = {}, []
        for field, value in self.__dict__.items():
            if value is None:
                continue
            if field in AS_INIT_ARGUMENT:
                arguments[AS_INIT_ARGUMENT[field]] = value
            elif field not in W_AND_B_PROCESS:
                unknown.append(field)
        return arguments, unknown

    def __repr__(self) -> str:
        return f"Settings({self.__dict__!r})"
