"""CLI commands that talk to hosts: deploy and verify (Nornir is imported only for these)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any, Protocol

from nornir.core import Nornir
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mesh_tasks.core.verification import VerifyReport
from mesh_tasks.report import console, emit_json, err_console, ok_mark, simple_table
from mesh_tasks.where_cli import add_where_command
from mesh_tasks.workflow import DeployLocked, DeployReport, deploy, limit, open_nornir, verify

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class RichProgress:
    """A Nornir processor that advances one rich progress bar as hosts finish (single use per run)."""

    def __init__(self, title: str, total: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
        self.bar = self.progress.add_task(title, total=total)

    def task_started(self, task: Any) -> None:
        self.progress.start()

    def task_completed(self, task: Any, result: Any) -> None:
        self.progress.stop()

    def task_instance_started(self, task: Any, host: Any) -> None:
        pass

    def task_instance_completed(self, task: Any, host: Any, result: Any) -> None:
        self.progress.advance(self.bar)

    def subtask_instance_started(self, task: Any, host: Any) -> None:
        pass

    def subtask_instance_completed(self, task: Any, host: Any, result: Any) -> None:
        pass


def _progress(args: argparse.Namespace) -> Any:
    if args.json:
        return None
    return lambda title, nr: [RichProgress(title, len(nr.inventory.hosts))]


def _nornir(args: argparse.Namespace) -> Nornir:
    nr = open_nornir(args.inventory, args.overlay, workers=args.workers)
    return limit(nr, args.limit)


def show_verify(report: VerifyReport, title: str = "verify") -> None:
    rows = []
    for node, checks in report.nodes().items():
        bad = [c for c in checks if not c.ok]
        kinds = {c.check for c in checks}
        peers = [c for c in checks if c.check == "handshake"]
        ospf = [c for c in checks if c.check == "ospf"]
        routes = [c for c in checks if c.check == "route"]
        rows.append(
            (
                node,
                ok_mark(not bad),
                f"{sum(c.ok for c in peers)}/{len(peers)}",
                f"{sum(c.ok for c in ospf)}/{len(ospf)}" if "ospf" in kinds else "-",
                f"{sum(c.ok for c in routes)}/{len(routes)}" if routes else "-",
                escape("; ".join(f"{c.subject} {c.check}: {c.detail}" for c in bad[:3]))
                + (" ..." if len(bad) > 3 else ""),
            )
        )
    console.print(
        simple_table(f"{title}: nodes", ["node", "status", "handshakes", "ospf full", "routes", "problems"], rows)
    )
    links = []
    for (a, b), link_checks in sorted(report.links().items()):
        hs = {c.node: c.detail for c in link_checks if c.check == "handshake"}
        adj = {c.node: c.detail for c in link_checks if c.check == "ospf"}
        links.append(
            (
                f"{a} <-> {b}",
                ok_mark(all(c.ok for c in link_checks)),
                hs.get(a, "-"),
                hs.get(b, "-"),
                adj.get(a, "-") if adj else "-",
            )
        )
    console.print(simple_table(f"{title}: links", ["link", "status", "handshake (a)", "handshake (b)", "ospf"], links))
    health = report.health()
    if report.ok:
        console.print(f"[green]mesh verified[/] ({len(report.checks)} checks)")
    else:
        console.print(
            f"[bold red]{len(report.failures)} of {len(report.checks)} checks failed: mesh {health['verdict']}[/]"
        )
        if health["dead_nodes"]:
            console.print(f"dead: {', '.join(health['dead_nodes'])}")
        if health["down_links"]:
            console.print(f"links down: {', '.join(health['down_links'])}")


class _Report(Protocol):
    @property
    def ok(self) -> bool: ...

    def as_dict(self) -> dict[str, Any]: ...


def _run_report(args: argparse.Namespace, work: Callable[[Nornir], _Report], show: Callable[[Any], None]) -> int:
    """The shape every host command shares: run, then JSON or tables, then the exit code."""
    try:
        with _nornir(args) as nr:
            report = work(nr)
    except DeployLocked as exc:
        err_console.print(f"[bold red]{escape(str(exc))}[/]")
        return EXIT_FAILED
    except KeyError as exc:
        err_console.print(f"[bold red]{escape(str(exc.args[0]))}[/]")
        return EXIT_BAD_INPUT
    if args.json:
        emit_json(report.as_dict())
    else:
        show(report)
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_deploy(args: argparse.Namespace) -> int:
    return _run_report(
        args,
        lambda nr: deploy(
            nr,
            dry_run=args.dry_run,
            rollback=not args.no_rollback,
            settle=args.settle,
            max_age=args.max_age,
            progress=_progress(args),
        ),
        lambda report: show_deploy(report, args.dry_run),
    )


def show_deploy(report: DeployReport, dry_run: bool) -> None:
    if dry_run:
        for outcome in report.hosts.values():
            if outcome.diff:
                console.rule(outcome.node)
                console.print(outcome.diff, markup=False, highlight=False, end="")
    rows = [
        (
            o.node,
            ok_mark(o.ok),
            "yes" if o.changed else "no",
            "yes" if o.rolled_back else "",
            escape(", ".join(o.actions) or o.error or "-"),
        )
        for o in report.hosts.values()
    ]
    title = "deploy --dry-run (nothing changed)" if dry_run else f"deploy ({report.seconds:.1f} s)"
    console.print(simple_table(title, ["host", "status", "changed", "rolled back", "actions / error"], rows))
    console.print(f"changed={len(report.changed)}")
    if report.verify is not None:
        show_verify(report.verify, "verify after deploy")
    if report.after_rollback is not None:
        show_verify(report.after_rollback, "verify after rollback")
        console.print("[bold red]deploy failed verification: the changed hosts were rolled back[/]")


def cmd_verify(args: argparse.Namespace) -> int:
    return _run_report(
        args,
        lambda nr: verify(nr, settle=args.settle, max_age=args.max_age, progress=_progress(args)),
        show_verify,
    )


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from mesh_tasks.rotation import RotationError, rotate_key

    reports = []
    try:
        with _nornir(args) as nr:
            for node in args.nodes:  # one node at a time: two neighbours never switch at once
                report = rotate_key(nr, node, settle=args.settle, progress=_progress(args))
                reports.append(report)
                if not report.ok:
                    break
    except (RotationError, DeployLocked) as exc:
        err_console.print(f"[bold red]{escape(str(exc))}[/]")
        return EXIT_FAILED
    if args.json:
        emit_json([r.as_dict() for r in reports])
    else:
        for r in reports:
            steps = ", ".join(f"{k} {v:.2f} s" for k, v in r.steps.items())
            console.print(f"{r.node}: {r.old_key[:10]}... -> {r.new_key[:10]}... ({steps})")
            if r.deploy and r.deploy.verify:
                show_verify(r.deploy.verify, f"verify after rotating {r.node}")
    return EXIT_OK if reports and all(r.ok for r in reports) else EXIT_FAILED


def add_host_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    hosts = argparse.ArgumentParser(add_help=False)
    hosts.add_argument(
        "--limit",
        nargs="+",
        metavar="HOST|GROUP",
        help="only these hosts or groups (hubs, spokes); their peers outside the limit stay peers",
    )
    hosts.add_argument("--workers", type=int, default=32, help="parallel SSH sessions (default %(default)s)")
    hosts.add_argument("--max-age", type=int, help="handshake age that counts as down (default: mesh setting)")

    p = sub.add_parser("deploy", parents=[common, hosts], help="push, apply, verify; roll back on failure")
    p.add_argument("--dry-run", action="store_true", help="show per-host diffs against the hosts, change nothing")
    p.add_argument("--no-rollback", action="store_true", help="keep the new config even if verify fails")
    p.add_argument("--settle", type=float, default=60.0, help="seconds to wait for handshakes/OSPF (default 60)")
    p.set_defaults(func=cmd_deploy)
    p = sub.add_parser("rotate-key", parents=[common, hosts], help="new key pair on NODE, in the safe order")
    p.add_argument("nodes", nargs="+", metavar="NODE")
    p.add_argument("--settle", type=float, default=60.0, help="seconds to wait for fresh handshakes (default 60)")
    p.set_defaults(func=cmd_rotate_key)
    add_where_command(sub, common)
    p = sub.add_parser("verify", parents=[common, hosts], help="check live handshakes, AllowedIPs, OSPF, routes")
    p.add_argument("--settle", type=float, default=0.0, help="poll up to this many seconds for convergence")
    p.set_defaults(func=cmd_verify)
