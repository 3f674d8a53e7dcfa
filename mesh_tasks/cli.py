"""`python -m mesh_tasks`: validate, render, plan, deploy, verify, and the lab.

Exit codes: 0 all good; 1 something failed on the hosts (deploy or verify); 2 bad input (the source of
truth has errors, or the command line is wrong) — in which case nothing was pushed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mesh_tasks.core.diff import diff_files, read_tree, rendered_dir, write_tree
from mesh_tasks.core.findings import Finding, MeshInputError, has_errors
from mesh_tasks.core.load import build_plan
from mesh_tasks.core.plan import MeshPlan
from mesh_tasks.core.render import render_node
from mesh_tasks.report import console, emit_json, err_console, findings_table

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_INVENTORY = "inventory/mesh.yaml"

EPILOG = """\
typical session:
  python -m mesh_tasks validate                      # check inventory/mesh.yaml, all findings at once
  python -m mesh_tasks plan                          # which nodes and lines change since the last deploy
  python -m mesh_tasks deploy --dry-run              # per-host diffs against what is on the hosts
  python -m mesh_tasks deploy                        # push, apply, verify, roll back on failure
  python -m mesh_tasks verify --json                 # handshakes, AllowedIPs, OSPF, routes

a lab of real hosts on this machine (network namespaces, sshd, wireguard-go, FRR):
  python -m mesh_tasks lab up                        # writes inventory/.lab/overlay.yaml
  python -m mesh_tasks deploy --overlay inventory/.lab/overlay.yaml
"""


def _load(args: argparse.Namespace) -> tuple[MeshPlan, list[Finding]] | int:
    """The plan, or the exit code after showing every finding that stops us."""
    try:
        plan, findings = build_plan(args.inventory, getattr(args, "overlay", None))
    except MeshInputError as exc:
        return _show_findings(args, exc.findings)
    if has_errors(findings):
        return _show_findings(args, findings)
    return plan, findings


def _show_findings(args: argparse.Namespace, findings: list[Finding]) -> int:
    failed = has_errors(findings)
    if args.json:
        emit_json({"ok": not failed, "findings": [f.as_dict() for f in findings]})
    elif findings:
        (err_console if failed else console).print(findings_table(findings))
    if failed:
        if not args.json:
            err_console.print(f"[bold red]{args.inventory}: fix the errors above; nothing was rendered or pushed.[/]")
        return EXIT_BAD_INPUT
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    plan, findings = loaded
    if not args.json:
        mesh = plan.mesh
        console.print(
            f"[green]{args.inventory}: valid[/] — {len(mesh.nodes)} nodes, {len(plan.tunnels)} tunnels, "
            f"{mesh.settings.topology}, routing {mesh.settings.routing}"
        )
    return _show_findings(args, findings)


def _render_all(plan: MeshPlan, nodes: list[str] | None = None) -> dict[str, dict[str, str]]:
    return {name: render_node(plan.node(name), plan.mesh.settings.name) for name in nodes or plan.mesh.nodes}


def cmd_render(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    plan, _ = loaded
    out = Path(args.out)
    rendered = _render_all(plan)
    for node, files in rendered.items():
        write_tree(out, node, files)
    count = sum(len(f) for f in rendered.values())
    if args.json:
        emit_json({"ok": True, "out": str(out), "nodes": {n: sorted(f) for n, f in rendered.items()}})
    else:
        console.print(f"rendered {count} files for {len(rendered)} nodes into {out}/NODE/...")
        missing = [n for n in plan.mesh.nodes if n not in plan.state.public_keys]
        if missing:
            console.print(f"[yellow]public keys pending for {len(missing)} node(s) (made on each node at deploy)[/]")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if isinstance(loaded, int):
        return loaded
    plan, _ = loaded
    against = Path(args.against) if args.against else rendered_dir(Path(args.inventory))
    report: dict[str, Any] = {}
    known = {p.name for p in against.iterdir()} if against.is_dir() else set()
    for node, files in _render_all(plan).items():
        changes = diff_files(read_tree(against, node), files, label=f"{node}:")
        if changes:
            report[node] = changes
    for gone in sorted(known - set(plan.mesh.nodes)):
        report[gone] = diff_files(read_tree(against, gone), {}, label=f"{gone}:")
    if args.json:
        emit_json(
            {
                "against": str(against),
                "changed_nodes": sorted(report),
                "changes": {
                    n: [{"path": c.path, "kind": c.kind, "diff": c.diff} for c in cs] for n, cs in report.items()
                },
            }
        )
        return EXIT_OK
    if not report:
        console.print(f"no changes against {against}")
        return EXIT_OK
    for node, changes in report.items():
        console.rule(f"{node}: {len(changes)} file(s)")
        for change in changes:
            console.print(change.diff, markup=False, highlight=False, end="")
    console.print(f"\n{len(report)} node(s) change: {', '.join(report)}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--inventory", "-i", default=DEFAULT_INVENTORY, help="source of truth (default %(default)s)")
    common.add_argument("--overlay", help="lab overlay (SSH targets/endpoints), e.g. inventory/.lab/overlay.yaml")
    common.add_argument("--json", action="store_true", help="machine-readable output on stdout")

    parser = argparse.ArgumentParser(
        prog="python -m mesh_tasks",
        description="A WireGuard mesh as managed infrastructure: one source of truth, Nornir over SSH.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("validate", parents=[common], help="check the source of truth; every finding at once")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("render", parents=[common], help="render every node's files into a directory (offline)")
    p.add_argument("--out", required=True, help="directory; files land in OUT/NODE/etc/...")
    p.set_defaults(func=cmd_render)
    p = sub.add_parser("plan", parents=[common], help="which nodes and lines change against the last deploy")
    p.add_argument("--against", help="a rendered tree to compare with (default: what the last deploy wrote)")
    p.set_defaults(func=cmd_plan)

    from mesh_tasks.workflow_cli import add_host_commands  # Nornir is only imported for commands that use it

    add_host_commands(sub, common)
    from mesh_tasks.lab.cli import add_lab_parser

    add_lab_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except MeshInputError as exc:
        args.json = getattr(args, "json", False)
        args.inventory = getattr(args, "inventory", DEFAULT_INVENTORY)
        return _show_findings(args, exc.findings)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
