"""The Nornir task that reads a node's live WireGuard and FRR state in one round trip."""

from __future__ import annotations

from collections.abc import Iterable

from nornir.core.task import Result, Task

from mesh_tasks.core.verification import LiveInterface, LivePeer, LiveState
from mesh_tasks.host.commands import (
    FRR_STATE,
    WG_ALLOWED_IPS,
    WG_DUMP,
    HostCommand,
    Section,
    route_get,
)
from mesh_tasks.host.parsers import (
    parse_allowed_ips,
    parse_bfd_peers,
    parse_ospf_neighbors,
    parse_route_get,
    parse_routes,
    parse_wg_dump,
    split_json_documents,
)
from mesh_tasks.tasks.remote import checked, run_batch

NOW = HostCommand("now", "date +%s")


def probe_command(addresses: Iterable[str]) -> HostCommand:
    """Ping every tunnel's far end once, in parallel: idle static-mode tunnels only handshake when there is
    traffic, and an answer through the tunnel is the most direct proof that it carries packets."""
    pings = " ".join(f"{{ ping -c1 -W1 -q {a} >/dev/null 2>&1 && echo {a} ok || echo {a} fail; }} &" for a in addresses)
    return HostCommand("probe", f"{pings} wait; true")


def collect_status(task: Task, probes: dict[str, Iterable[str]] | None = None, routed: bool = False) -> Result:
    """Probe the peers, then read `wg show all dump` (keys redacted on the host) and, in routed mode,
    OSPF neighbors, BFD peers and the routing table as JSON."""
    commands = [probe_command(probes[task.host.name])] if probes and probes.get(task.host.name) else []
    commands += [NOW, WG_DUMP]
    if routed:
        commands.append(FRR_STATE)
    sections = run_batch(task, commands)
    return Result(host=task.host, result=live_state(sections, routed))


def live_state(sections: dict[str, Section], routed: bool) -> LiveState:
    dump = parse_wg_dump(checked(sections, "wg_dump"))
    interfaces = {}
    for iface in dump.interfaces:
        peers = {
            p.public_key: LivePeer(
                p.public_key,
                str(p.endpoint) if p.endpoint else None,
                frozenset(str(a) for a in p.allowed_ips),
                p.latest_handshake,
            )
            for p in dump.peers_of(iface.name)
        }
        interfaces[iface.name] = LiveInterface(iface.name, iface.listen_port, peers)
    ospf_full: dict[str, list[str]] = {}
    bfd_up: dict[str, bool] = {}
    routes: dict[str, frozenset[str]] = {}
    if routed:
        neighbors, bfd, ip_routes = split_json_documents(checked(sections, "frr_state"), 3)
        for n in parse_ospf_neighbors(neighbors):
            if n.full:
                ospf_full.setdefault(n.interface.split(":")[0], []).append(str(n.router_id))
        for b in parse_bfd_peers(bfd):
            if b.interface:
                bfd_up[b.interface] = bfd_up.get(b.interface, False) or b.up
        for prefix, entries in parse_routes(ip_routes).items():
            for entry in entries:
                if entry.selected and entry.protocol == "ospf":
                    routes[str(prefix)] = frozenset(h.interface for h in entry.nexthops if h.interface and h.fib)
    answers = (
        dict(line.split() for line in sections["probe"].text.splitlines() if len(line.split()) == 2)
        if ("probe" in sections)
        else {}
    )
    probes = {address: answer == "ok" for address, answer in answers.items()}
    return LiveState(int(checked(sections, "now").strip()), interfaces, ospf_full, bfd_up, routes, probes)


def collect_route(task: Task, address: str) -> Result:
    """`ip route get ADDRESS` and every WireGuard peer's AllowedIPs, in one round trip (for `where`)."""
    sections = run_batch(task, [route_get(address), WG_ALLOWED_IPS])
    return Result(
        host=task.host,
        result=(
            parse_route_get(sections[f"route_get:{address}"].text),
            parse_allowed_ips(checked(sections, "wg_allowed_ips")),
        ),
    )
