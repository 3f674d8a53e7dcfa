"""Who owns a destination on each node: from the plan, to compare with what the live host does.

Static mode: the wg0 peer whose AllowedIPs longest-match the address (AllowedIPs is the routing table).
Routed mode: the tunnel interfaces of the equal-cost shortest paths to the node that owns the address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mesh_tasks.core.model import IPAddress
from mesh_tasks.core.plan import MeshPlan, NodePlan


@dataclass(frozen=True, slots=True)
class Owner:
    """Where a node sends the destination: `local` (its own network), a set of (interface, peer), or nowhere."""

    local: bool
    hops: frozenset[tuple[str, str]]  # (interface, peer node)
    prefix: str | None  # the AllowedIPs prefix (static) or the owning node's network (routed)

    def describe(self) -> str:
        if self.local:
            return f"local ({self.prefix})"
        if not self.hops:
            return "nowhere: no tunnel carries it"
        return ", ".join(f"{i} -> {p}" for i, p in sorted(self.hops)) + (f" ({self.prefix})" if self.prefix else "")


def owning_node(plan: MeshPlan, address: IPAddress) -> tuple[str, str] | None:
    """The node whose network (or route) contains the address, longest prefix first."""
    best: tuple[int, str, str] | None = None
    for name in plan.mesh.nodes:
        for prefix in plan.prefixes(name):
            net = ipaddress.ip_network(prefix)
            if net.version == address.version and address in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, name, prefix)
    return None if best is None else (best[1], best[2])


def planned_owner(
    plan: MeshPlan, node: NodePlan, address: IPAddress, next_hops: dict[str, frozenset[str]] | None = None
) -> Owner:
    owner = owning_node(plan, address)
    if owner is not None and owner[0] == node.name:
        return Owner(True, frozenset(), owner[1])
    if node.routing == "static":
        best: tuple[int, str, str, str] | None = None
        for iface, peer in node.peers():
            for prefix in peer.allowed_ips:
                net = ipaddress.ip_network(prefix)
                if net.version == address.version and address in net and (best is None or net.prefixlen > best[0]):
                    best = (net.prefixlen, iface.name, peer.node, prefix)
        return Owner(False, frozenset({(best[1], best[2])}), best[3]) if best else Owner(False, frozenset(), None)
    if owner is None or next_hops is None:
        return Owner(False, frozenset(), None)
    ifaces = next_hops.get(owner[1], frozenset())
    peer_of = {i.name: i.peers[0].node for i in node.interfaces if i.peers}
    return Owner(False, frozenset((i, peer_of.get(i, "?")) for i in ifaces), owner[1])
