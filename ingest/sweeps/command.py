"""What a sweep's `command` means, as the `wandb` client's agent reads it (standard library only).

Read from wandb/wandb `wandb/wandb_agent.py` (`Agent._command_run`) and
`wandb/sdk/launch/sweeps/utils.py` (`create_sweep_command`,
`create_sweep_command_args`):

- a missing or empty `command` (`command: []`) is the default command;
- every item becomes text with Python's `str()` (a YAML `- 10` is "10");
- `${envvar:NAME}` is replaced anywhere in an item, NAME being upper-case
  letters, digits and `_`; an unset NAME leaves the name itself;
- every other macro counts only as a whole item: `${args}` alone expands to
  its arguments, while `--x=${args}` stays literal.

The validator (`config.py`) and the agent (`pulse/sweep_command.py`) share
these definitions, so what is accepted is exactly what gets built.
"""

from __future__ import annotations

import os
import re
from typing import Any

DEFAULT_COMMAND = ["${env}", "${interpreter}", "${program}", "${args}"]
# Macros that expand to the trial's parameters, one list of arguments each.
ARG_MACROS = ("args", "args_no_equals", "args_no_hyphens", "args_no_boolean_flags", "args_json",
              "args_append_hydra", "args_override_hydra")
# Macros that expand to one word each.
WORD_MACROS = ("env", "interpreter", "program", "args_json_file")
MACROS = frozenset(ARG_MACROS + WORD_MACROS)
ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")


def command_items(command: Any) -> list[str]:
    """The sweep's command as text items; None or [] is the default command."""
    if not command:
        return list(DEFAULT_COMMAND)
    return [item if isinstance(item, str) else str(item) for item in command]


def expand_envvars(item: str, environ: dict[str, str] | None = None) -> str:
    """`${envvar:NAME}` replaced by NAME's value, or by NAME itself when it is unset (as W&B)."""
    environ = os.environ if environ is None else environ
    return ENVVAR.sub(lambda m: environ.get(m.group(1), m.group(1)), item)


def whole_macro(item: str) -> str | None:
    """The macro's name when `item` is one macro standing alone ("${args}" -> "args"), else None.

    W&B's test is exactly "starts with ${ and ends with }".
    """
    return item[2:-1] if item.startswith("${") and item.endswith("}") else None


def macro_problems(command: list[str]) -> list[str]:
    """One line per whole-item macro the agent would not know.

    W&B's agent silently drops an unknown whole-item macro (`sweep_vars.get(...)
    or []`); Pulse refuses it instead, since it is almost always a typo such as
    ${interpeter} and the trial would run with an argument missing.
    """
    known = ", ".join(f"${{{m}}}" for m in sorted(MACROS)) + ", ${envvar:NAME}"
    problems = []
    for item in command:
        name = whole_macro(expand_envvars(item, {}))
        if name is None or name in MACROS:
            continue
        if name.startswith("envvar:"):
            problems.append(f"command: ${{{name}}}: an environment variable name is upper-case letters, digits "
                            "and _ (as in W&B)")
        else:
            problems.append(f"command: unknown macro ${{{name}}} (known: {known})")
    return problems
