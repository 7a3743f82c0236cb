"""A trial's command line from the sweep's `command` and W&B's macros.

    ${env}                    /usr/bin/env
    ${interpreter}            this Python (the agent's sys.executable)
    ${program}                the sweep's `program`
    ${args}                   --name=value for every parameter
    ${args_no_hyphens}        name=value
    ${args_no_boolean_flags}  --name=value, but a true boolean as a bare --name and a false one left out
    ${args_json}              the parameters as one JSON argument
    ${args_json_file}         the path of a file holding that JSON
    ${envvar:NAME}            the agent's environment variable NAME

A list macro standing alone as an item expands to several arguments.

Example:
    build_command(["${env}", "${interpreter}", "${program}", "${args}"], "train.py", {"lr": 0.1}, json_file)
    # ['/usr/bin/env', '/usr/bin/python3', 'train.py', '--lr=0.1']
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from ingest.sweeps.config import DEFAULT_COMMAND, MACRO


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def build_command(command: list[str] | None, program: str, params: dict[str, Any], json_file: Path) -> list[str]:
    """The argv of one trial; `json_file` is written only when the command uses ${args_json_file}."""
    args = [f"--{k}={_text(v)}" for k, v in params.items()]
    lists = {
        "args": args,
        "args_no_hyphens": [a[2:] for a in args],
        "args_no_boolean_flags": [f"--{k}" if v is True else f"--{k}={_text(v)}"
                                  for k, v in params.items() if v is not False],
        "args_json": [json.dumps(params)],
    }
    out: list[str] = []
    for item in command or DEFAULT_COMMAND:
        whole = MACRO.fullmatch(item)
        if whole and whole.group(1) in lists:
            out.extend(lists[whole.group(1)])
            continue
        out.append(MACRO.sub(lambda m: _scalar(m.group(1), program, params, json_file, lists), item))
    return out


def _scalar(macro: str, program: str, params: dict[str, Any], json_file: Path, lists: dict[str, list[str]]) -> str:
    if macro == "env":
        return "/usr/bin/env"
    if macro == "interpreter":
        return sys.executable
    if macro == "program":
        return program
    if macro == "args_json_file":
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(params))
        return str(json_file)
    if macro.startswith("envvar:"):
        return os.environ.get(macro[len("envvar:"):], "")
    if macro in lists:
        return " ".join(lists[macro])
    raise ValueError(f"unknown macro ${{{macro}}} in the sweep's command")
