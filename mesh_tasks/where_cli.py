"""`python -m mesh_tasks where DEST`: which peer and interface own a destination, planned vs live."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

from rich.markup import escape

from mesh_tasks.core.plan import with_known_peers
from mesh_tasks.core.verification import routed_next_hops
from mesh_tasks.core.where import Owner, planned_owner
from mesh_tasks.host.parsers import PeerAllowedIps, RouteGet, longest_match
from mesh_tasks.report import console, emit_json, err_console, ok_mark, simple_table
from mesh_tasks.tasks.status import collect_route
from mesh_tasks.workflow import current_plan, error_text, limit, open_nornir, run_phase


def live_owner(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    route: RouteGet,
    allowed: tuple[PeerAllowedIps, ...],
    names: dict[str, str],
) -> Owner:
    """What the host does: the kernel's route, then WireGuard's longest AllowedIPs match on that device."""
    if not route.routed or route.device is None:
        return Owner(False, frozenset(), f"no route: {route.error}")
    on_device = [e for e in allowed if e.interface == route.device]
    if route.route_type == "local" or not on_device:
        return Owner(True, frozenset(), f"dev {route.device}")
    match = longest_match(address, on_device)
    peer = names.get(match.public_key, match.public_key[:10] + "...") if match else "no peer"
    return Owner(False, frozenset({(route.device, peer)}), None)


def agree(planned: Owner, live: Owner) -> bool:
    return planned.local == live.local and (planned.local or (bool(live.hops) and live.hops <= planned.hops))


def cmd_where(args: argparse.Namespace) -> int:
    try:
        address = ipaddress.ip_address(args.destination)
    except ValueError:
        err_console.print(f"[bold red]{escape(args.destination)} is not an IP address[/]")
        return 2
    with open_nornir(args.inventory, args.overlay, workers=args.workers) as nr:
        nr = limit(nr, args.source)
        plan = current_plan(nr)
        plans = {n: with_known_peers(plan.node(n)) for n in plan.mesh.nodes}
        hops = routed_next_hops(plan, plans)
        names = {key: node for node, key in plan.state.public_keys.items()}
        collected = run_phase(nr, None, f"where {address}", collect_route, address=str(address))
    rows: list[dict[str, Any]] = []
    for node in nr.inventory.hosts:
        planned = planned_owner(plan, plans[node], address, hops.get(node))
        result = collected[node]
        if result.failed:
            rows.append(
                {
                    "node": node,
                    "planned": planned.describe(),
                    "live": f"unreachable: {error_text(result)}",
                    "agree": False,
                }
            )
            continue
        route, allowed = result[0].result
        live = live_owner(address, route, allowed, names)
        rows.append(
            {"node": node, "planned": planned.describe(), "live": live.describe(), "agree": agree(planned, live)}
        )
    if args.json:
        emit_json({"destination": str(address), "nodes": rows})
    else:
        console.print(
            simple_table(
                f"where {address}",
                ["node", "plan", "live (ip route get + wg allowed-ips)", "agree"],
                [(r["node"], escape(r["planned"]), escape(r["live"]), ok_mark(r["agree"])) for r in rows],
            )
        )
    return 0 if all(r["agree"] for r in rows) else 1


def add_where_command(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("where", parents=[common], help="which peer and interface own DEST, planned vs live")
    p.add_argument("destination", metavar="DEST", help="an IP address")
    p.add_argument("--from", dest="source", nargs="+", metavar="NODE", help="only these nodes (default: all)")
    p.add_argument("--workers", type=int, default=32)
    p.set_defaults(func=cmd_where)
