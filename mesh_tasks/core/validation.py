"""Rules over the whole mesh and its plan, checked before anything is rendered or pushed.

Every rule returns Findings naming nodes, fields and prefixes. Shape errors (bad CIDR, unknown key, ...)
were already raised by model.load_mesh; these are the rules that need more than one node to see.
Rules are linear or n log n in the mesh size: a 10000-node mesh validates in about a second.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections import defaultdict
from collections.abc import Iterator

from mesh_tasks.core.findings import Finding, error, warning
from mesh_tasks.core.model import IPNetwork, Mesh
from mesh_tasks.core.plan import MeshPlan, settings_keepalive

_SHOW = 6  # names listed in one finding before "and N more"


def validate(plan: MeshPlan) -> list[Finding]:
    mesh = plan.mesh
    findings = list(plan.findings)
    for rule in (
        _links,
        _hubs,
        _routing_mode,
        _networks_overlap,
        _endpoints,
        _nat_keepalive,
        _shared_targets,
        _public_keys,
        _static_prefixes,
        _ospf_timers,
    ):
        findings.extend(rule(mesh, plan))
    return findings


def _names(names: list[str]) -> str:
    more = f" and {len(names) - _SHOW} more" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def _links(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    seen: set[tuple[str, str]] = set()
    for i, (a, b) in enumerate(mesh.links):
        field = f"links[{i}]"
        unknown = [n for n in (a, b) if n not in mesh.nodes]
        if unknown:
            yield error(unknown[0], field, f"link [{a}, {b}] names unknown node(s): {', '.join(unknown)}")
        elif a == b:
            yield error(a, field, f"link [{a}, {b}] joins a node to itself")
        else:
            key = (a, b) if a < b else (b, a)
            topology_has_it = mesh.settings.topology == "full-mesh" or "hub" in (mesh.nodes[a].role, mesh.nodes[b].role)
            if key in seen or topology_has_it:
                yield warning(a, field, f"link [{a}, {b}] is already a tunnel of the topology")
            seen.add(key)


def _hubs(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    if mesh.settings.topology != "hub-and-spoke":
        return
    hubs = mesh.hubs()
    if not hubs:
        yield error("mesh", "mesh.topology", "hub-and-spoke needs at least one node with role: hub")
    elif not any(h.endpoint is not None for h in hubs):
        yield error(
            hubs[0].name,
            f"nodes.{hubs[0].name}.endpoint",
            f"no hub has a reachable endpoint ({_names([h.name for h in hubs])}): spokes cannot reach any hub",
        )
    elif len(hubs) > 1 and mesh.settings.routing == "static":
        yield warning(
            plan.primary_hub or "mesh",
            "mesh.routing",
            f"static mode sends all spoke-to-spoke traffic via the primary hub {plan.primary_hub}; "
            "other hubs carry only their own networks and nothing fails over: use routing: ospf for that",
        )


def _routing_mode(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    if mesh.settings.routing != "ospf":
        return
    for node in mesh.nodes.values():
        base = f"nodes.{node.name}"
        for i, net in enumerate(node.networks):
            if net.version == 6:
                yield error(
                    node.name,
                    f"{base}.networks[{i}]",
                    f"{net}: routing: ospf carries IPv4 networks only (OSPFv2); use static mode for IPv6",
                )
        if node.routes:
            yield error(node.name, f"{base}.routes", "routes are static-mode AllowedIPs; in ospf mode list networks")
        if node.endpoint is not None and node.endpoint.port is not None:
            yield error(
                node.name,
                f"{base}.endpoint",
                "ospf mode derives one port per tunnel (listen_port + tunnel id): give the host only",
            )
        if node.listen_port is not None:
            yield error(node.name, f"{base}.listen_port", "ospf mode allocates ports per tunnel: remove listen_port")


def _overlaps(items: list[tuple[IPNetwork, str, str]]) -> Iterator[tuple[tuple[IPNetwork, str, str], ...]]:
    """Pairs of overlapping prefixes in one sweep. CIDRs are either nested or disjoint, so a stack of
    the prefixes still "open" at the current start address holds exactly the ones containing it."""
    ordered = sorted(items, key=lambda t: (t[0].version, int(t[0].network_address), t[0].prefixlen))
    stack: list[tuple[IPNetwork, str, str]] = []
    for item in ordered:
        net = item[0]
        while stack and (
            stack[-1][0].version != net.version or int(stack[-1][0].broadcast_address) < int(net.network_address)
        ):
            stack.pop()
        for outer in stack:
            yield outer, item
        stack.append(item)


def _networks_overlap(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    """Networks must be disjoint from each other and from the pools (routes may overlap: see _static_prefixes)."""
    items: list[tuple[IPNetwork, str, str]] = [(mesh.settings.transit_pool, "mesh", "mesh.transit_pool")]
    if mesh.settings.routing == "ospf":
        items.append((mesh.settings.link_pool, "mesh", "mesh.link_pool"))
    for node in mesh.nodes.values():
        items.extend((net, node.name, f"nodes.{node.name}.networks[{i}]") for i, net in enumerate(node.networks))
    for (outer, owner_a, field_a), (inner, owner_b, field_b) in _overlaps(items):
        owner = owner_b if owner_b != "mesh" else owner_a
        field = field_b if owner_b != "mesh" else field_a
        what = "is the same prefix as" if outer == inner else "overlaps"
        yield error(owner, field, f"{inner} ({field_b}) {what} {outer} ({field_a}): networks must be disjoint")


def _endpoints(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    unreachable: dict[str, list[str]] = defaultdict(list)
    for a, b in plan.tunnels:
        if mesh.nodes[a].endpoint is None and mesh.nodes[b].endpoint is None:
            unreachable[a].append(b)
    for name, peers in unreachable.items():
        yield error(
            name,
            f"nodes.{name}.endpoint",
            f"no handshake can start between {name} and {_names(peers)}: neither side has an endpoint; "
            "give one side a public endpoint (or drop the link)",
        )
    owners: dict[tuple[str, int | None], list[str]] = defaultdict(list)
    for node in mesh.nodes.values():
        if node.endpoint is not None:
            port = (
                node.endpoint.port
                or node.listen_port
                or (mesh.settings.listen_port if mesh.settings.routing == "static" else None)
            )
            owners[(node.endpoint.host, port)].append(node.name)
    for (host, port), names in owners.items():
        if len(names) > 1 and (port is not None or mesh.settings.routing == "static"):
            shown = f"{host}:{port}" if port is not None else host
            for name in names[1:]:
                yield error(
                    name,
                    f"nodes.{name}.endpoint",
                    f"endpoint {shown} is also {names[0]}'s: two nodes cannot share one public port",
                )


def _nat_keepalive(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    for node in mesh.nodes.values():
        if node.nat and settings_keepalive(node, mesh) == 0:
            yield error(
                node.name,
                f"nodes.{node.name}.keepalive",
                f"{node.name} is behind NAT with keepalive 0: its NAT mapping expires and its peers lose it; "
                "keepalive belongs on the NATed side (25 s is usual)",
            )


def _shared_targets(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    owners: dict[tuple[str, int], str] = {}
    for node in mesh.nodes.values():
        target = (node.management.host, node.management.port)
        if not node.management.host:
            continue
        if target in owners:
            yield error(
                node.name,
                f"nodes.{node.name}.management",
                f"SSH target {target[0]}:{target[1]} is also {owners[target]}'s",
            )
        owners.setdefault(target, node.name)


def _public_keys(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    owners: dict[str, str] = {}
    for name, key in plan.state.public_keys.items():
        if name not in mesh.nodes:
            continue
        if not is_wireguard_key(key):
            yield error(name, f"state.public_keys.{name}", "not a WireGuard key (44 base64 characters, 32 bytes)")
        elif key in owners:
            yield error(name, f"state.public_keys.{name}", f"same public key as {owners[key]}")
        owners.setdefault(key, name)


def is_wireguard_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    try:
        return len(key) == 44 and len(base64.b64decode(key, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _static_prefixes(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    """The overlap trap: one prefix on two peers of wg0 (the last `wg set` wins, silently), and every
    longest-prefix ambiguity. Only overlapping prefix pairs can cause either, so find those pairs once
    for the whole mesh and then ask, per node, whether their next hops differ."""
    if mesh.settings.routing != "static":
        return
    items = [(ipaddress.ip_network(p), owner, p) for owner in mesh.nodes for p in plan.prefixes(owner)]
    for (outer, owner_a, _), (inner, owner_b, _) in _overlaps(items):
        if owner_a == owner_b:
            continue
        split = []
        for name in mesh.nodes:
            if name in (owner_a, owner_b):
                continue
            hop_a, hop_b = plan.next_hop(name, owner_a), plan.next_hop(name, owner_b)
            if hop_a is not None and hop_b is not None and hop_a != hop_b:
                split.append(name)
        if not split:
            continue
        where = f"wg0 of {_names(split)}"
        if outer == inner:
            yield error(
                owner_b,
                f"nodes.{owner_b}.routes",
                f"overlap trap: {inner} is routed to both {owner_a} and {owner_b} on {where}; WireGuard "
                "keeps only the last peer given a prefix. Use distinct prefixes, or routing: ospf",
            )
        else:
            yield warning(
                owner_a,
                f"nodes.{owner_a}",
                f"longest-prefix ambiguity on {where}: {inner} goes to {owner_b} while the rest of "
                f"{outer} goes to {owner_a}",
            )


def _ospf_timers(mesh: Mesh, plan: MeshPlan) -> Iterator[Finding]:
    ospf = mesh.settings.ospf
    if mesh.settings.routing == "ospf" and ospf.dead_interval <= ospf.hello_interval:
        yield error(
            "mesh",
            "mesh.ospf.dead_interval",
            f"dead_interval {ospf.dead_interval} must exceed hello_interval {ospf.hello_interval} (4x is usual)",
        )
    if mesh.settings.routing == "ospf" and ospf.lsa_arrival_ms > ospf.lsa_interval_ms:
        yield error(
            "mesh",
            "mesh.ospf.lsa_arrival_ms",
            f"lsa_arrival_ms {ospf.lsa_arrival_ms} exceeds lsa_interval_ms {ospf.lsa_interval_ms}: "
            "routers would drop their neighbours' legitimate LSA updates",
        )
