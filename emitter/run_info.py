"""What `init()` learns about the run's process, for the run page: stored as `runs.metadata` (JSON).

    {"host": "gpu-3", "os": "Linux-6.1-x86_64", "python": "3.11.9", "executable": "/usr/bin/python3",
     "command": ["train.py", "--lr", "0.1"], "cwd": "/home/me/proj", "pid": 4242, "user": "me",
     "packages": {"torch": "2.13.0", "numpy": "2.1.0"},
     "git": {"commit": "3f2a...", "dirty": true, "branch": "main", "remote": "git@..."}}

Everything but git is cheap and read at once. Git is asked once per process (and directory), in a
background thread with a short timeout, so `init()` never waits for it: the run's start (still in the queue) gets the
git fields when they arrive before the sender encodes it, which is almost always (the sender's
first batch goes out after its first interval); when git is slow or absent the run has none.
Package versions are read only for packages the process has already imported.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
import subprocess
import sys
import threading
from importlib import metadata
from typing import Any

GIT_TIMEOUT_S = 2.0
# Distributions worth naming on a run page, by the module a training script imports.
PACKAGES = {"torch": "torch", "numpy": "numpy", "transformers": "transformers", "lightning": "lightning",
            "pytorch_lightning": "pytorch-lightning", "keras": "keras", "tensorflow": "tensorflow",
            "jax": "jax", "flax": "flax", "sklearn": "scikit-learn", "pandas": "pandas",
            "accelerate": "accelerate", "datasets": "datasets", "deepspeed": "deepspeed", "peft": "peft",
            "timm": "timm", "torchvision": "torchvision", "xgboost": "xgboost", "lightgbm": "lightgbm",
            "emitter": "pulse-tracker"}
MAX_COMMAND_CHARS = 4096
_git_seen: dict[str, dict[str, Any]] = {}  # working directory -> what git said (once per process)


def with_metadata(start: dict[str, Any]) -> dict[str, Any]:
    """`start` (the run's queued RunStart payload) with `metadata_json`; git fills in later.

    The git thread replaces `start["metadata_json"]` with one assignment of a complete JSON
    text, so whichever version the sender encodes is whole.
    """
    info = process_info(start.get("host") or socket.gethostname())
    cwd = info["cwd"]
    if cwd in _git_seen:  # a later run of this process, in the same directory: git was asked already
        info["git"] = _git_seen[cwd]
        start["metadata_json"] = json.dumps(info)
        return start
    start["metadata_json"] = json.dumps(info)

    def ask_git() -> None:
        found = _git_seen[cwd] = git_info()
        if found:
            start["metadata_json"] = json.dumps({**info, "git": found})

    threading.Thread(target=ask_git, name="pulse-git", daemon=True).start()
    return start


def process_info(host: str) -> dict[str, Any]:
    """Host, OS, Python, command line, working directory and the imported packages' versions."""
    command = list(sys.argv)
    while len(json.dumps(command)) > MAX_COMMAND_CHARS and len(command) > 1:
        command = command[:-1]
    return {"host": host, "os": platform.platform(), "python": platform.python_version(),
            "executable": sys.executable, "command": command, "cwd": _cwd(), "pid": os.getpid(),
            "user": _user(), "packages": package_versions()}


def package_versions() -> dict[str, str]:
    """Versions of the well-known packages this process imported (no import happens here)."""
    found = {}
    for module, distribution in PACKAGES.items():
        if module in sys.modules:
            try:
                found[distribution] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                version = getattr(sys.modules[module], "__version__", None)
                if isinstance(version, str):
                    found[distribution] = version
    return found


def git_info(cwd: str | None = None, timeout: float = GIT_TIMEOUT_S) -> dict[str, Any]:
    """commit, dirty, branch and remote of the working tree around `cwd`; {} outside one or without git."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    found: dict[str, Any] = {"commit": commit, "dirty": bool(status) if status is not None else None}
    if branch := git("rev-parse", "--abbrev-ref", "HEAD"):
        found["branch"] = branch
    if remote := git("config", "--get", "remote.origin.url"):
        found["remote"] = _without_credentials(remote)
    return found


def _without_credentials(url: str) -> str:
    """https://user:token@host/x -> https://host/x: a remote URL may carry a token."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:  # the directory was removed under the process
        return ""


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers without a passwd entry)
        return ""
