"""Verification: the live state of each node against what it should be. Pure: values in, checks out.

What a node should be comes from its files (so a fresh deploy and a rollback are checked alike) and,
in routed mode, from the plan's graph: each node's networks must be routed via the interfaces on an
equal-cost shortest path.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from mesh_tasks.core.plan import MeshPlan, NodePlan
from mesh_tasks.core.render import WIREGUARD_DIR, render_node
from mesh_tasks.core.wgquick import PlannedInterface, parse_wg_quick


@dataclass(frozen=True, slots=True)
class LivePeer:
    public_key: str
    endpoint: str | None
    allowed_ips: frozenset[str]
    latest_handshake: int | None  # epoch seconds, None: never


@dataclass(frozen=True, slots=True)
class LiveInterface:
    name: str
    listen_port: int | None
    peers: dict[str, LivePeer]


@dataclass(frozen=True, slots=True)
class LiveState:
    """A node's live state as collected over SSH (the status task builds it from the parsers)."""

    now: int
    interfaces: dict[str, LiveInterface]
    ospf_full: dict[str, list[str]] = field(default_factory=dict)  # interface -> router ids in Full
    bfd_up: dict[str, bool] = field(default_factory=dict)  # interface -> BFD session up
    routes: dict[str, frozenset[str]] = field(default_factory=dict)  # prefix -> selected next-hop interfaces
    probes: dict[str, bool] = field(default_factory=dict)  # address -> answered a ping through the tunnel


@dataclass(frozen=True, slots=True)
class NodeExpectation:
    node: str
    interfaces: dict[str, PlannedInterface]
    ospf_interfaces: tuple[str, ...] = ()
    bfd: bool = False
    probes: dict[str, str] = field(default_factory=dict)  # peer tunnel address -> subject ("wg0:hub1")
    routes: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeCheck:
    node: str
    subject: str  # "wgt3:hub1", "wg0", "10.2.0.0/24", "host"
    check: str  # "peer", "allowed-ips", "handshake", "ospf", "bfd", "route", ...
    ok: bool
    detail: str = ""


LIVENESS = frozenset({"peer", "handshake", "ping", "ospf", "bfd"})  # a link carries packets (not: config drift)


@dataclass
class VerifyReport:
    checks: list[NodeCheck]
    expected: dict[str, NodeExpectation]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[NodeCheck]:
        return [c for c in self.checks if not c.ok]

    def nodes(self) -> dict[str, list[NodeCheck]]:
        out: dict[str, list[NodeCheck]] = defaultdict(list)
        for c in self.checks:
            out[c.node].append(c)
        return dict(out)

    def links(self) -> dict[tuple[str, str], list[NodeCheck]]:
        """Checks grouped per tunnel (node pair), from both ends."""
        out: dict[tuple[str, str], list[NodeCheck]] = defaultdict(list)
        for c in self.checks:
            if ":" in c.subject and not c.subject[0].isdigit():
                peer = c.subject.split(":", 1)[1]
                out[(c.node, peer) if c.node < peer else (peer, c.node)].append(c)
        return dict(out)

    def health(self) -> dict[str, Any]:
        """The operator's summary: dead nodes, links down, and whether the live rest still connects.

        A link is up when both ends see it (handshake, ping, OSPF/BFD where planned); a node is dead when
        it is unreachable or every one of its links is down.
        """
        links = {pair: all(c.ok for c in checks if c.check in LIVENESS) for pair, checks in self.links().items()}
        nodes = set(self.expected)
        unreachable = {c.node for c in self.checks if c.subject == "host" and not c.ok}
        touching: dict[str, list[bool]] = defaultdict(list)
        for (a, b), up in links.items():
            touching[a].append(up)
            touching[b].append(up)
        dead = sorted(unreachable | {n for n in nodes if touching[n] and not any(touching[n])})
        alive = nodes - set(dead)
        adjacency: dict[str, set[str]] = defaultdict(set)
        for (a, b), up in links.items():
            if up:
                adjacency[a].add(b)
                adjacency[b].add(a)
        seen: set[str] = set()
        stack = [min(alive)] if alive else []
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(adjacency[node] - seen)
        connected = seen == alive
        verdict = "healthy" if self.ok else "degraded but connected" if connected else "partitioned"
        return {
            "verdict": verdict,
            "dead_nodes": dead,
            "down_links": sorted(f"{a}<->{b}" for (a, b), up in links.items() if not up),
            "connected": connected,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "health": self.health(),
            "failures": [asdict(c) for c in self.failures],
            "nodes": {n: all(c.ok for c in cs) for n, cs in self.nodes().items()},
            "links": {f"{a}<->{b}": all(c.ok for c in cs) for (a, b), cs in self.links().items()},
            "checks": len(self.checks),
        }


def _frr_interfaces(frr_conf: str) -> tuple[tuple[str, ...], bool]:
    """OSPF-active interfaces (not passive) of a rendered frr.conf, and whether BFD is on."""
    active, current = [], None
    for line in frr_conf.splitlines():
        if line.startswith("interface "):
            current = line.split()[1]
        elif line.strip() == "no ip ospf passive" and current:
            active.append(current)
    return tuple(active), " ip ospf bfd" in frr_conf


def _probes(interfaces: dict[str, PlannedInterface], addresses: dict[str, str]) -> dict[str, str]:
    """The far end of each tunnel: its /31 partner (routed) or the peer's own transit address (static;
    not the other nodes behind a hub, whose own tunnels are checked on their own)."""
    out: dict[str, str] = {}
    for iface in interfaces.values():
        for peer in iface.peers.values():
            subject = f"{iface.name}:{peer.name}"
            if iface.routed:
                local = ipaddress.IPv4Interface(iface.address)
                out.update((str(a), subject) for a in local.network if a != local.ip)
            elif f"{addresses.get(peer.name)}/32" in peer.allowed_ips:
                out[addresses[peer.name]] = subject
    return out


def expectations(
    mesh_plan: MeshPlan, plans: dict[str, NodePlan], files: dict[str, dict[str, str]] | None = None
) -> dict[str, NodeExpectation]:
    routes_by_node = routed_next_hops(mesh_plan, plans) if files is None else {}
    if files is None:
        files = {name: render_node(plan, mesh_plan.mesh.settings.name) for name, plan in plans.items()}
    out = {}
    for name, node_files in files.items():
        interfaces = {}
        for path, text in node_files.items():
            if path.startswith(f"{WIREGUARD_DIR}/") and path.endswith(".conf"):
                iface = path.rsplit("/", 1)[1].removesuffix(".conf")
                interfaces[iface] = parse_wg_quick(iface, text)
        ospf_ifaces, bfd = _frr_interfaces(node_files.get("/etc/frr/frr.conf", ""))
        out[name] = NodeExpectation(
            node=name,
            interfaces=interfaces,
            ospf_interfaces=tuple(i for i in ospf_ifaces if i in interfaces),
            bfd=bfd,
            probes=_probes(interfaces, {n: str(a) for n, a in mesh_plan.allocations.addresses.items()}),
            routes=routes_by_node.get(name, {}),
        )
    return out


def routed_next_hops(mesh_plan: MeshPlan, plans: dict[str, NodePlan]) -> dict[str, dict[str, frozenset[str]]]:
    """Routed mode: for every node, each other node's IPv4 networks -> the interfaces of all equal-cost
    shortest paths (OSPF installs all of them)."""
    if mesh_plan.mesh.settings.routing != "ospf":
        return {}
    edges: dict[str, list[tuple[str, str, int]]] = defaultdict(list)  # node -> (neighbor, interface, cost)
    for name, plan in plans.items():
        for iface in plan.interfaces:
            for peer in iface.peers:
                edges[name].append((peer.node, iface.name, iface.ospf_cost or 1))
    dist = {dest: _dijkstra(edges, dest) for dest in plans}
    out: dict[str, dict[str, frozenset[str]]] = {}
    for name in plans:
        table = {}
        for dest in plans:
            if dest == name or name not in dist[dest]:
                continue
            hops = frozenset(
                i for nb, i, c in edges[name] if nb in dist[dest] and c + dist[dest][nb] == dist[dest][name]
            )
            for net in mesh_plan.mesh.nodes[dest].networks:
                if net.version == 4:
                    table[str(net)] = hops
        out[name] = table
    return out


def _dijkstra(edges: dict[str, list[tuple[str, str, int]]], source: str) -> dict[str, int]:
    dist = {source: 0}
    heap = [(0, source)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist.get(node, d):
            continue
        for nb, _, cost in edges[node]:
            if d + cost < dist.get(nb, 1 << 60):
                dist[nb] = d + cost
                heapq.heappush(heap, (d + cost, nb))
    return dist


def evaluate(expected: NodeExpectation, live: LiveState, max_age: int) -> list[NodeCheck]:
    node = expected.node
    checks: list[NodeCheck] = []
    for name, iface in expected.interfaces.items():
        have = live.interfaces.get(name)
        if have is None:
            checks.append(NodeCheck(node, name, "interface", False, "missing on the host"))
            continue
        port_ok = iface.listen_port is None or have.listen_port == iface.listen_port
        checks.append(
            NodeCheck(node, name, "listen-port", port_ok, f"{have.listen_port} (planned {iface.listen_port})")
        )
        for key, peer in iface.peers.items():
            checks.extend(
                _peer_checks(
                    node, f"{name}:{peer.name}", peer.allowed_ips, peer.endpoint, have.peers.get(key), live.now, max_age
                )
            )
        for key in have.peers.keys() - iface.peers.keys():
            checks.append(NodeCheck(node, name, "unplanned-peer", False, f"peer {key[:10]}... is not in the plan"))
    for name in expected.ospf_interfaces:
        peers = expected.interfaces[name].peers
        subject = f"{name}:{next(iter(peers.values())).name}" if peers else name
        full = live.ospf_full.get(name, [])
        checks.append(NodeCheck(node, subject, "ospf", bool(full), "Full" if full else "no Full adjacency"))
        if expected.bfd:
            up = live.bfd_up.get(name, False)
            checks.append(NodeCheck(node, subject, "bfd", up, "up" if up else "down or missing"))
    for address, subject in expected.probes.items():
        answered = live.probes.get(address, False)
        checks.append(NodeCheck(node, subject, "ping", answered, f"{address} " + ("answers" if answered else "silent")))
    for prefix, hops in sorted(expected.routes.items()):
        have_hops = live.routes.get(prefix, frozenset())
        ok = bool(have_hops) and have_hops == hops
        detail = f"via {', '.join(sorted(have_hops)) or 'nothing'} (planned {', '.join(sorted(hops))})"
        checks.append(NodeCheck(node, prefix, "route", ok, detail))
    return checks


def _peer_checks(
    node: str,
    subject: str,
    allowed: frozenset[str],
    endpoint: str | None,
    live: LivePeer | None,
    now: int,
    max_age: int,
) -> list[NodeCheck]:
    if live is None:
        return [NodeCheck(node, subject, "peer", False, "planned public key not configured")]
    checks = [NodeCheck(node, subject, "peer", True, "public key present")]
    missing, extra = allowed - live.allowed_ips, live.allowed_ips - allowed
    detail = "as planned" if not (missing or extra) else f"missing {sorted(missing)} extra {sorted(extra)}"
    checks.append(NodeCheck(node, subject, "allowed-ips", not (missing or extra), detail))
    if endpoint is not None:
        checks.append(
            NodeCheck(node, subject, "endpoint", live.endpoint == endpoint, f"{live.endpoint} (planned {endpoint})")
        )
    if live.latest_handshake is None:
        checks.append(NodeCheck(node, subject, "handshake", False, "never: tunnel down"))
    else:
        age = now - live.latest_handshake
        fresh = age <= max_age
        checks.append(
            NodeCheck(node, subject, "handshake", fresh, f"{age}s ago" + ("" if fresh else ": stale, tunnel down"))
        )
    return checks
