"""`pulse sweep FILE.yaml`, `pulse sweep --stop|--cancel ID` and `pulse agent ID`.

Example:
    $ pulse sweep sweep.yaml --project mnist
    pulse sweep: created sweep 3k9x2m1a in project mnist (grid, 16 trials)
    pulse sweep: run agents on any machine that reaches this server:
    pulse agent 3k9x2m1a
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

# YAML 1.1 reads `1e-5` (no dot) as a string; sweep files mean a number, as YAML 1.2 does.
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X)


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """A sweep YAML (or JSON) file as a mapping."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    with open(path) as f:
        loaded = yaml.load(f, Loader=Loader)  # a SafeLoader: no arbitrary objects
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} must hold a mapping (program, method, parameters, ...)")
    return loaded


def cmd_sweep(args: argparse.Namespace) -> int:
    import yaml

    from pulse.sweep_client import SweepClient, SweepError
    from pulse.sweep_command import needs_program

    client = SweepClient(args.server, retry_for=10.0)
    try:
        if args.stop or args.cancel:
            sweep = (client.cancel if args.cancel else client.stop)(args.target.rsplit("/", 1)[-1])
            print(f"pulse sweep: sweep {sweep.sweep_id} is {sweep.state} ({sweep.running} trials still running)")
            return 0
        try:
            config = load_sweep_file(args.target)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            print(f"pulse sweep: cannot read {args.target}: {exc}", file=sys.stderr)
            return 2
        project = args.project or config.get("project") or os.environ.get("PULSE_PROJECT", "")
        sweep = client.create(project if isinstance(project, str) else "", config)
    except SweepError as exc:
        print(f"pulse sweep: {exc}", file=sys.stderr)
        return 2
    size = f", {sweep.grid_size} trials" if sweep.grid_size else ""
    print(f"pulse sweep: created sweep {sweep.sweep_id} in project {sweep.project} "
          f"({config.get('method')}{size})")
    print(f"pulse sweep: run agents on any machine that reaches {client.server} (PULSE_SERVER):")
    if not config.get("program") and needs_program(config.get("command")):
        print(f"pulse sweep: it has no program; from Python: emitter.agent({sweep.sweep_id!r}, function=train)")
    print(f"pulse agent {sweep.sweep_id}", flush=True)
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from pulse.agent import Agent
    from pulse.sweep_client import SweepClient

    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop` and friends stop the trials like Ctrl-C does
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    agent = Agent(SweepClient(args.server), args.sweep_id, count=args.count, gpus=gpus, kill_grace=args.kill_grace,
                  heartbeat=float(os.environ.get("PULSE_AGENT_HEARTBEAT", 5.0)), interpreter=args.interpreter)
    return agent.run()


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="register a W&B-format sweep, or stop/cancel one")
    p.add_argument("target", metavar="FILE_OR_ID", help="the sweep YAML, or with --stop/--cancel the sweep id")
    p.add_argument("--project", default=None, help="project of the sweep's runs (beats the YAML's project)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--stop", action="store_true", help="no new trials; running ones finish")
    group.add_argument("--cancel", action="store_true", help="no new trials; running ones are killed")
    p.add_argument("--server", default=None, help="ingest host:port (default $PULSE_SERVER)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("agent", help="run a sweep's trials on this machine")
    p.add_argument("sweep_id", help="the id `pulse sweep` printed")
    p.add_argument("--count", type=int, default=None, help="run at most this many trials, then exit")
    p.add_argument("--gpus", default=None, help="comma-separated GPU ids: one trial at a time per GPU")
    p.add_argument("--kill-grace", type=float, default=30.0,
                   help="seconds between SIGTERM and SIGKILL when a trial is stopped")
    p.add_argument("--interpreter", default=None,
                   help="what the command's ${interpreter} runs (default $PULSE_SWEEP_INTERPRETER, else python, "
                        "as in W&B)")
    p.add_argument("--server", default=None, help="ingest host:port (default $PULSE_SERVER)")
    p.set_defaults(func=cmd_agent)
