"""`mesh_tasks lab up|down|status|fault|exec`: the lab from the command line.

The top-level CLI calls `add_lab_parser(subparsers)`; every command sets `func(args) -> int`.
Errors become one line on stderr and exit code 2 (refused, nothing done) or 1 (failed).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import subprocess
import sys
import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from mesh_tasks.core.findings import MeshInputError
from mesh_tasks.core.model import load_mesh
from mesh_tasks.lab.addressing import DEFAULT_RANGE
from mesh_tasks.lab.errors import LabError, LabPreflightError, LabRangeError
from mesh_tasks.lab.host import nsenter_argv
from mesh_tasks.lab.lab import FAULTS, Lab
from mesh_tasks.lab.spec import spec_from_mesh
from mesh_tasks.lab.state import LabState
from mesh_tasks.lab.teardown import teardown

DEFAULT_INVENTORY = "inventory/mesh.yaml"


def _inventory(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "inventory", None) or DEFAULT_INVENTORY)


def _state_dir(args: argparse.Namespace) -> Path:
    """--state-dir, else `.lab/` beside the source of truth."""
    if args.state_dir:
        return Path(args.state_dir)
    return _inventory(args).resolve().parent / ".lab"


def _fail(exc: Exception) -> int:
    print(f"lab: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, LabRangeError | LabPreflightError) else 1


def cmd_up(args: argparse.Namespace) -> int:
    """Load the SoT, build the lab, print the overlay and what to run next."""
    console = Console(stderr=True)
    try:
        source = _inventory(args)
        spec = spec_from_mesh(load_mesh(source))
        started = time.monotonic()
        lab = Lab.up(
            spec,
            _state_dir(args),
            address_range=args.range if args.range == "auto" else ipaddress.IPv4Network(args.range),
            nat_timeout=args.nat_timeout,
            nat_stream_timeout=args.nat_stream_timeout,
            ready_timeout=args.timeout,
            progress=lambda msg: console.print(f"[dim]… {msg}[/dim]"),
        )
    except MeshInputError:
        raise  # the top-level CLI shows every finding of the source of truth
    except (LabError, ValueError, OSError) as exc:
        return _fail(exc)
    took = time.monotonic() - started
    sd = lab.state_dir
    print(f"lab up: {len(lab.nodes)} hosts answering SSH in {took:.1f}s")
    print(f"overlay: {lab.overlay_path}")
    print("next:")
    print(f"  python -m mesh_tasks deploy --inventory {source} --overlay {lab.overlay_path}")
    print(f"  python -m mesh_tasks lab status --state-dir {sd}")
    print(f"  python -m mesh_tasks lab exec --state-dir {sd} {lab.nodes[0]} -- wg show")
    print(f"  python -m mesh_tasks lab down --state-dir {sd}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    """Tear down from the state file, or from names alone when it is gone (idempotent)."""
    sd = _state_dir(args).resolve()
    started = time.monotonic()
    try:
        report = teardown(sd, LabState.load(sd))
    except LabError as exc:
        return _fail(exc)
    took = time.monotonic() - started
    print(
        f"lab down in {took:.1f}s: {len(report.namespaces)} namespaces, {len(report.links)} links, "
        f"{len(report.routes)} routes, {len(report.killed)} processes"
    )
    for problem in report.problems:
        print(f"lab: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        lab = Lab.load(_state_dir(args))
        hosts = lab.status()
    except LabError as exc:
        if args.json:
            print(json.dumps({"status": "down", "hosts": [], "error": str(exc)}))
        return _fail(exc)
    if args.json:
        print(
            json.dumps(
                {
                    "status": lab.state.status,
                    "state_dir": str(lab.state_dir),
                    "overlay": str(lab.overlay_path),
                    "hosts": [h.as_json() for h in hosts],
                },
                indent=2,
            )
        )
        return 0 if all(h.up for h in hosts) else 1
    table = Table(title=f"lab {lab.state.lab_id} ({lab.state.status}) - {lab.state_dir}", box=box.SIMPLE)
    for col in ("host", "role", "mgmt", "underlay", "nat", "up", "sshd", "frr", "wg", "pid"):
        table.add_column(col, no_wrap=True)
    for h in hosts:
        wg = sum(1 for _, n in h.processes if n == "wireguard-go")
        nat = "-" if not h.nat else ("yes" if h.router_up else "[red]router gone[/red]")
        table.add_row(
            h.name,
            h.role,
            h.management,
            h.underlay or "-",
            nat,
            "[green]up[/green]" if h.up else "[red]down[/red]",
            "yes" if h.has("sshd") else "[red]no[/red]",
            "yes" if h.has("zebra") else "[red]no[/red]",
            str(wg),
            str(h.pid or "-"),
        )
    # Piped output is not truncated to 80 columns (rich's default when stdout is not a terminal).
    (Console() if sys.stdout.isatty() else Console(width=160)).print(table)
    print(f"overlay: {lab.overlay_path}")
    return 0 if all(h.up for h in hosts) else 1


def cmd_fault(args: argparse.Namespace) -> int:
    try:
        print(
            Lab.load(_state_dir(args)).fault(args.node, args.action, seconds=args.seconds, stream=args.stream_seconds)
        )
    except LabError as exc:
        return _fail(exc)
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    """Run a command inside a host, passing its output and exit code through."""
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        return _fail(LabError("exec needs a command: lab exec NODE -- CMD ..."))
    try:
        lab = Lab.load(_state_dir(args))
        if args.router:
            proc = lab.router_exec(args.node, cmd)
        else:  # inherit the terminal: interactive commands and streaming output work
            return subprocess.call(nsenter_argv(lab.pid(args.node), cmd))
    except LabError as exc:
        return _fail(exc)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


def add_lab_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `lab` and its commands on the top-level CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--inventory", "-i", metavar="SOT", help=f"source of truth YAML (default {DEFAULT_INVENTORY})")
    common.add_argument("--state-dir", help="lab state directory (default: .lab/ beside the source of truth)")

    lab = subparsers.add_parser(
        "lab",
        help="real hosts on this machine (namespaces, sshd, FRR, NAT)",
        description="A lab of real hosts on this machine, built from the source of truth.",
    )
    sub = lab.add_subparsers(dest="lab_command", metavar="COMMAND", required=True)

    up = sub.add_parser("up", parents=[common], help="bring a lab up and write its overlay")
    up.add_argument(
        "--range",
        default=str(DEFAULT_RANGE),
        help=f"IPv4 range for management/underlay/NAT links, at least a /22 (default {DEFAULT_RANGE}); "
        f"'auto' takes the first /20 of it that no route uses, so labs can run side by side",
    )
    up.add_argument(
        "--nat-timeout",
        type=int,
        metavar="SECONDS",
        help="UDP conntrack timeout of NAT routers (default: kernel default, 30)",
    )
    up.add_argument(
        "--nat-stream-timeout",
        type=int,
        metavar="SECONDS",
        help="UDP stream conntrack timeout of NAT routers (default: --nat-timeout, else kernel 120)",
    )
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every host (default 60)")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", parents=[common], help="remove everything the lab created (idempotent)")
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", parents=[common], help="hosts, addresses, NAT and processes")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    fault = sub.add_parser("fault", parents=[common], help="inject a fault into a host")
    fault.add_argument("node")
    fault.add_argument("action", choices=FAULTS)
    fault.add_argument("--seconds", type=int, help="nat-timeout: UDP conntrack timeout")
    fault.add_argument("--stream-seconds", type=int, help="nat-timeout: UDP stream timeout (default --seconds)")
    fault.set_defaults(func=cmd_fault)

    run = sub.add_parser("exec", parents=[common], help="run a command inside a host: lab exec NODE -- CMD")
    run.add_argument("--router", action="store_true", help="run inside the node's NAT router instead")
    run.add_argument("node")
    run.add_argument("cmd", nargs=argparse.REMAINDER)
    run.set_defaults(func=cmd_exec)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m mesh_tasks.lab`), for when the top-level CLI is not there."""
    parser = argparse.ArgumentParser(prog="mesh_tasks")
    add_lab_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc
