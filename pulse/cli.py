"""The `pulse` command: up, ingest, dashboard, demo, sync, sql."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from pulse.startup import default_data_dir, preflight
from pulse.sweep_cli import add_parsers as add_sweep_parsers

DEFAULT_DATA = default_data_dir()


def _store_url(args: argparse.Namespace) -> str:
    from ingest.server import data_url

    return args.clickhouse or os.environ.get("PULSE_CLICKHOUSE_URL") or data_url(args.data)


def _ingest_config(args: argparse.Namespace):
    from ingest.server import IngestConfig

    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("pulse: --tls-cert and --tls-key go together")
    return IngestConfig(clickhouse_url=_store_url(args), host=args.host, port=args.port,
                        heartbeat_timeout=args.heartbeat_timeout, flush_interval=args.flush_interval,
                        max_buffer_rows=args.max_buffer_rows, auth=args.auth, insecure=args.insecure,
                        tls_cert=args.tls_cert or "", tls_key=args.tls_key or "",
                        admin_key_path=os.path.join(os.path.abspath(os.path.expanduser(args.data)), "admin-key"),
                        cluster=args.cluster or "", blob_url=args.blobs or "",
                        max_streams=args.max_streams, max_streams_per_key=args.max_streams_per_key,
                        sql_port=args.sql_port)


def _add_ingest_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=DEFAULT_DATA, help="data directory of the embedded store")
    p.add_argument("--clickhouse", help="ClickHouse URL (http(s)://... or chdb:///DIR) instead of --data")
    p.add_argument("--cluster", metavar="NAME",
                   help="the ClickHouse cluster (remote_servers name) to create the clustered schema on")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=50051)
    p.add_argument("--sql-port", type=int, default=int(os.environ.get("PULSE_SQL_PORT") or 8123),
                   help="ClickHouse HTTP interface for BI tools, read-only, on --host (0: off; default $PULSE_SQL_PORT "
                        "or 8123)")
    p.add_argument("--heartbeat-timeout", type=float,
                   default=float(os.environ.get("PULSE_HEARTBEAT_TIMEOUT", 60)),
                   help="seconds without a heartbeat before a running run is marked crashed")
    p.add_argument("--flush-interval", type=float, default=0.5, help="seconds between buffer flushes")
    p.add_argument("--max-buffer-rows", type=int, default=4_000_000,
                   help="rows buffered before the server pushes back with UNAVAILABLE")
    p.add_argument("--max-streams", type=int, default=16_384,
                   help="telemetry streams open at once, all keys together (one per training process)")
    p.add_argument("--max-streams-per-key", type=int, default=4096,
                   help="telemetry streams one API key may hold open at once")
    p.add_argument("--auth", action="store_true",
                   help="require API keys; the first start writes an admin key to <data dir>/admin-key")
    p.add_argument("--insecure", action="store_true",
                   help="allow listening on a non-loopback address without --auth")
    p.add_argument("--tls-cert", help="PEM certificate chain: serve gRPC over TLS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--blobs", metavar="URL",
                   help="where media bytes go: a directory (file:///...) or s3://bucket/prefix "
                        "(default: $PULSE_BLOB_URL, else <data dir>/blobs)")


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.server import serve

    try:
        serve(_ingest_config(args))
    except (PermissionError, ValueError) as exc:  # refused settings: say which, without a traceback
        print(f"pulse ingest: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from pulse.stack import run_stack

    try:
        return run_stack(_ingest_config(args), ui_port=None if args.no_ui else args.ui_port)
    except (PermissionError, ValueError) as exc:  # refused settings: say which, without a traceback
        print(f"pulse up: {exc}", file=sys.stderr)
        return 2


def cmd_keys(args: argparse.Namespace) -> int:
    from pulse.keys import run_keys

    return run_keys(args)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pulse.stack import dashboard_exposure, start_dashboard, warn_exposed

    clickhouse = args.clickhouse or os.environ.get("PULSE_CLICKHOUSE_URL") or None
    if exposure := dashboard_exposure(args.host, args.server, clickhouse):
        warn_exposed(exposure, f"port {args.port}")
    process = start_dashboard(args.port, args.server, clickhouse, host=args.host)
    print(f"pulse dashboard: http://{args.host}:{args.port}", flush=True)
    return process.wait()


def cmd_demo(args: argparse.Namespace) -> int:
    from pulse.demo import run_demo

    return run_demo(_ingest_config(args), ui_port=args.ui_port, runs=args.runs, sweep_agents=args.sweep_agents)


SHOWN_REFUSED = 20  # batches refused whole that `pulse sync` names one by one


def cmd_sync(args: argparse.Namespace) -> int:
    from emitter.sync import sync

    results = sync(Path(args.dir) if args.dir else None, server=args.server, timeout=args.timeout)
    if not results:
        print("pulse sync: nothing to upload")
    for r in results:
        status = r.reason if r.busy else "uploaded" if r.uploaded else f"NOT uploaded ({r.reason})"
        if r.rejected:  # acknowledged, but not stored: say so beside "uploaded"
            status += f", {len(r.rejected)} of them REFUSED by the server and not stored"
        stored_as = f" as {r.reason}" if r.uploaded and r.reason and not r.busy else ""
        print(f"pulse sync: {r.directory.name}: {r.batches} {r.unit} {status}{stored_as}")
        corrupt = r.corrupt
        for name, damage in r.damage:  # what was skipped, on stderr, each time
            what = "SKIPPED" if (name, damage) in corrupt else "skipped (a write cut short by a kill)"
            print(f"pulse sync: {r.directory / name}: {what} {damage.describe()}", file=sys.stderr)
        for path in r.quarantined:
            print(f"pulse sync: kept {path.name} in {path.parent} (see {path.name}.note), not deleted",
                  file=sys.stderr)
        for note in r.notes:
            print(f"pulse sync: {r.directory.name}: {note}", file=sys.stderr)
        for refused in r.rejected[:SHOWN_REFUSED]:  # set aside by the transport (emitter/rejected.py), with why
            print(f"pulse sync: {r.directory.name}: batch {refused.seq} ({refused.points} metric points) REFUSED "
                  f"by the server: {refused.reason}; set aside in {refused.path} (reason in "
                  f"{refused.path.with_suffix('.txt').name}), not stored", file=sys.stderr)
        if len(r.rejected) > SHOWN_REFUSED:  # a refused start refuses every batch: name the place, not each
            print(f"pulse sync: {r.directory.name}: and {len(r.rejected) - SHOWN_REFUSED} more batches REFUSED, "
                  f"each set aside in {r.rejected[-1].path.parent} with its reason", file=sys.stderr)
    return 1 if any(r.failed for r in results) else 0


def cmd_sql(args: argparse.Namespace) -> int:
    from pulse.sql import run_sql

    return run_sql(args.query, args.format, server=args.server, clickhouse=args.clickhouse)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description="Pulse experiment tracker")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="ingest service plus dashboard")
    _add_ingest_flags(p)
    p.add_argument("--ui-port", type=int, default=8501)
    p.add_argument("--no-ui", action="store_true", help="run the ingest service only")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("ingest", help="the ingest service alone")
    _add_ingest_flags(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("dashboard", help="the dashboard alone")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (beyond loopback, use an ingest with --auth: it then asks for keys)")
    p.add_argument("--server", default=None, help="ingest host:port (reads through its Query RPC)")
    p.add_argument("--clickhouse", default=None, help="read ClickHouse directly at this URL")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("demo", help="up plus demo training runs")
    _add_ingest_flags(p)
    p.add_argument("--ui-port", type=int, default=8501)
    p.add_argument("--runs", type=int, default=3, help="demo training runs to start")
    p.add_argument("--sweep-agents", type=int, default=2, help="agents on the demo sweep (0: no sweep)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sync", help="upload runs spooled on disk")
    p.add_argument("dir", nargs="?", help="the PULSE_DIR to upload from (default: $PULSE_DIR or .pulse)")
    p.add_argument("--server", default=None)
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("keys", help="manage API keys (needs an admin key in PULSE_API_KEY)")
    p.add_argument("action", choices=("create", "list", "revoke"))
    p.add_argument("key_id", nargs="?", help="the key to revoke")
    p.add_argument("--project", default="", help="the project the new key may use (default: all)")
    p.add_argument("--read-only", action="store_true", help="the new key may only read")
    p.add_argument("--admin", action="store_true", help="the new key manages keys too")
    p.add_argument("--note", default="", help="a note kept with the key")
    p.add_argument("--server", default=None, help="ingest host:port (default $PULSE_SERVER)")
    p.set_defaults(func=cmd_keys)

    add_sweep_parsers(sub)

    p = sub.add_parser("sql", help="read-only SQL against the store")
    p.add_argument("query")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("--server", default=None, help="ingest host:port (default $PULSE_SERVER)")
    p.add_argument("--clickhouse", default=os.environ.get("PULSE_CLICKHOUSE_URL", "") or None,
                   help="query a ClickHouse server directly (http(s)://...)")
    p.set_defaults(func=cmd_sql)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("up", "ingest", "demo"):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        if problem := preflight(args, _store_url(args)):  # a taken port, a data directory in use
            print(f"pulse {args.command}: {problem}", file=sys.stderr)
            return 2
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
