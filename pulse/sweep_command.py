"""A trial's command line from the sweep's `command`, built as the `wandb` client's agent builds it.

    ${env}                    /usr/bin/env
    ${interpreter}            python (the word itself, so the trial runs in the user's environment;
                              `pulse agent --interpreter` or PULSE_SWEEP_INTERPRETER overrides it)
    ${program}                the sweep's `program`
    ${args}                   --name=value for every parameter
    ${args_no_equals}         --name value (two arguments)
    ${args_no_hyphens}        name=value
    ${args_append_hydra}      +name=value
    ${args_override_hydra}    ++name=value
    ${args_no_boolean_flags}  --name=value, but a true boolean as a bare --name and a false one left out
    ${args_json}              the parameters as one JSON argument
    ${args_json_file}         the path of a file holding that JSON
    ${envvar:NAME}            the environment variable NAME, anywhere in an item (NAME itself when unset)

Values are written with Python's `str()`, as W&B does: `--names=['a', 'b c']`,
`--opt={'lr': 0.01}`, `--flag=True`, `--x=None`. Rules for items and macros:
ingest/sweeps/command.py. Read from wandb/wandb `wandb/wandb_agent.py`
(`Agent._command_run`) and `wandb/sdk/launch/sweeps/utils.py`.

Example:
    build_command(None, "train.py", {"lr": 0.1, "layers": [64, 32]}, json_file)
    # ['/usr/bin/env', 'python', 'train.py', '--lr=0.1', '--layers=[64, 32]']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.sweeps.command import command_items, expand_envvars, whole_macro

DEFAULT_INTERPRETER = "python"


def command_args(params: dict[str, Any]) -> dict[str, list[str]]:
    """Every argument macro's expansion for a trial's (nested) parameters."""
    out: dict[str, list[str]] = {"args": [], "args_no_equals": [], "args_no_hyphens": [], "args_append_hydra": [],
                                 "args_override_hydra": [], "args_no_boolean_flags": []}
    for name, value in params.items():
        flag = f"{name}={value}"
        out["args"].append(f"--{flag}")
        out["args_no_equals"] += [f"--{name}", str(value)]
        out["args_no_hyphens"].append(flag)
        out["args_append_hydra"].append(f"+{flag}")
        out["args_override_hydra"].append(f"++{flag}")
        if not isinstance(value, bool):
            out["args_no_boolean_flags"].append(f"--{flag}")
        elif value:
            out["args_no_boolean_flags"].append(f"--{name}")
    out["args_json"] = [json.dumps(params)]
    return out


def build_command(command: Any, program: str, params: dict[str, Any], json_file: Path,
                  interpreter: str = DEFAULT_INTERPRETER) -> list[str]:
    """The argv of one trial; `json_file` is written only when the command uses ${args_json_file}."""
    words = command_args(params)
    words.update(env=["/usr/bin/env"], interpreter=[interpreter], program=[program],
                 args_json_file=[str(json_file)])
    out: list[str] = []
    for item in command_items(command):
        item = expand_envvars(item)
        name = whole_macro(item)
        if name is None:
            out.append(item)
            continue
        if name == "args_json_file":
            json_file.parent.mkdir(parents=True, exist_ok=True)
            json_file.write_text(words["args_json"][0])
        if name not in words:  # the validator refuses these; never build a command with a hole in it
            raise ValueError(f"unknown macro ${{{name}}} in the sweep's command")
        out.extend(words[name])
    return out


def needs_program(command: Any) -> bool:
    """Whether the command runs the sweep's `program`."""
    return any(whole_macro(expand_envvars(item, {})) == "program" for item in command_items(command))
