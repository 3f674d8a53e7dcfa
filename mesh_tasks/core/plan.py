"""The plan: from a validated mesh to what each node must run. Pure and deterministic.

This is the one place where AllowedIPs are decided (`MeshPlan.node`):
- static mode: one interface (wg0); AllowedIPs *is* the routing table. Each destination node's
  prefixes go to exactly one peer: the destination itself when a tunnel exists, else the primary hub.
- ospf mode: one interface per tunnel with exactly one peer; AllowedIPs is a permissive crypto gate
  (the mesh's collapsed prefixes plus OSPF's multicast group) and FRR OSPF does the routing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, replace
from typing import Any

from mesh_tasks.core.allocation import (
    STATIC_INTERFACE,
    Allocations,
    allocate,
    remember,
    tunnel_interface,
    tunnel_link,
    tunnel_port,
)
from mesh_tasks.core.model import BfdSettings, Mesh, Node, Routing
from mesh_tasks.core.state import MeshState
from mesh_tasks.core.topology import Tunnel, tunnels

OSPF_MULTICAST = "224.0.0.0/24"  # AllSPFRouters/AllDRouters: hellos must pass the crypto gate


@dataclass(frozen=True, slots=True)
class PeerPlan:
    node: str
    public_key: str | None  # None until the node has generated its key (first deploy)
    endpoint: str | None
    allowed_ips: tuple[str, ...]
    keepalive: int | None


@dataclass(frozen=True, slots=True)
class InterfacePlan:
    name: str
    address: str  # CIDR on this interface
    listen_port: int
    mtu: int
    routed: bool  # routed mode: wg-quick must not add routes (Table = off); OSPF does
    peers: tuple[PeerPlan, ...]
    peer_address: str | None = None  # routed mode: the far end of the /31
    ospf_cost: int | None = None


@dataclass(frozen=True, slots=True)
class OspfPlan:
    router_id: str
    area: str
    hello_interval: int
    dead_interval: int
    networks: tuple[str, ...]
    bfd: BfdSettings
    retransmit_interval: int
    lsa_interval_ms: int
    lsa_arrival_ms: int
    spf_throttle_ms: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class NodePlan:
    name: str
    role: str
    routing: Routing
    public_key: str | None
    address: str  # transit address (wg0 in static mode, router-id in ospf mode)
    forwarding: bool
    interfaces: tuple[InterfacePlan, ...]
    ospf: OspfPlan | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def peers(self) -> list[tuple[InterfacePlan, PeerPlan]]:
        return [(iface, peer) for iface in self.interfaces for peer in iface.peers]


class MeshPlan:
    """Topology, allocations and next hops for a whole mesh; node plans are built on demand."""

    def __init__(self, mesh: Mesh, state: MeshState | None = None) -> None:
        self.mesh = mesh
        self.state = state or MeshState()
        self.tunnels: list[Tunnel] = tunnels(mesh)
        self.allocations: Allocations
        self.allocations, self.findings = allocate(mesh, self.state, self.tunnels)
        self.neighbors: dict[str, list[str]] = {name: [] for name in mesh.nodes}
        self._node_tunnels: dict[str, list[Tunnel]] = {name: [] for name in mesh.nodes}
        for a, b in self.tunnels:
            self.neighbors[a].append(b)
            self.neighbors[b].append(a)
            self._node_tunnels[a].append((a, b))
            self._node_tunnels[b].append((a, b))
        self._neighbor_sets = {name: set(peers) for name, peers in self.neighbors.items()}
        hubs = mesh.hubs()
        self.primary_hub: str | None = (
            min(hubs, key=lambda n: (self.cost_of(n), list(mesh.nodes).index(n.name))).name if hubs else None
        )
        self._prefixes: dict[str, tuple[str, ...]] = {name: self._own_prefixes(name) for name in mesh.nodes}
        self._gate: tuple[str, ...] | None = None
        self._peer_cache: dict[tuple[str, int, tuple[str, ...], int | None], PeerPlan] = {}

    def next_state(self) -> MeshState:
        return remember(self.state, self.allocations)

    def cost_of(self, node: Node) -> int:
        return node.ospf_cost or self.mesh.settings.ospf.cost

    def prefixes(self, name: str) -> tuple[str, ...]:
        """What a node is the destination for: its transit address, its networks and its routes."""
        return self._prefixes[name]

    def _own_prefixes(self, name: str) -> tuple[str, ...]:
        node = self.mesh.nodes[name]
        address = self.allocations.addresses.get(name)
        own = [f"{address}/32"] if address is not None and self.mesh.settings.routing == "static" else []
        return (*own, *map(str, node.networks), *map(str, node.routes))

    def next_hop(self, name: str, dest: str) -> str | None:
        """Static mode: the peer of `name` that carries traffic for `dest` (None: no path)."""
        if dest in self._neighbor_sets[name]:
            return dest
        return self._hub_of(name)

    def _hub_of(self, name: str) -> str | None:
        """The peer that takes traffic for nodes `name` has no tunnel to: the primary hub."""
        hub = self.primary_hub
        return hub if hub is not None and hub in self._neighbor_sets[name] else None

    def node(self, name: str) -> NodePlan:
        node = self.mesh.nodes[name]
        settings = self.mesh.settings
        address = str(self.allocations.addresses.get(name, ""))
        routed = settings.routing == "ospf"
        interfaces = self._routed_interfaces(node) if routed else (self._static_interface(node),)
        ospf = None
        if routed:
            networks = [str(settings.link_pool)]
            networks += [str(n) for n in node.networks if isinstance(n, ipaddress.IPv4Network)]
            ospf = OspfPlan(
                router_id=address,
                area=settings.ospf.area,
                hello_interval=settings.ospf.hello_interval,
                dead_interval=settings.ospf.dead_interval,
                networks=tuple(networks),
                bfd=settings.bfd,
                retransmit_interval=settings.ospf.retransmit_interval,
                lsa_interval_ms=settings.ospf.lsa_interval_ms,
                lsa_arrival_ms=settings.ospf.lsa_arrival_ms,
                spf_throttle_ms=settings.ospf.spf_throttle_ms,
            )
        return NodePlan(
            name=name,
            role=node.role,
            routing=settings.routing,
            public_key=self.state.public_keys.get(name),
            address=address,
            forwarding=routed or node.role == "hub" or bool(node.networks),
            interfaces=tuple(interfaces),
            ospf=ospf,
        )

    def _peer(self, node: Node, other: Node, port: int, allowed: tuple[str, ...]) -> PeerPlan:
        keepalive = None
        if (node.nat or node.endpoint is None) and other.endpoint is not None:
            # Only the side that cannot be reached keeps the path (and its NAT mapping) open.
            keepalive = settings_keepalive(node, self.mesh) or None
        key = (other.name, port, allowed, keepalive)
        peer = self._peer_cache.get(key)
        if peer is None:  # in a full mesh, X's entry is the same in every other node's file: build it once
            endpoint = other.endpoint.with_port(port) if other.endpoint is not None else None
            peer = PeerPlan(other.name, self.state.public_keys.get(other.name), endpoint, allowed, keepalive)
            self._peer_cache[key] = peer
        return peer

    def static_allowed_ips(self, name: str) -> dict[str, tuple[str, ...]]:
        """Static mode routing table of one node: peer -> the prefixes it owns on wg0, in node order."""
        neighbors = self._neighbor_sets[name]
        hub = self._hub_of(name)
        table: dict[str, tuple[str, ...]] = {}
        for peer in self.mesh.nodes:
            if peer == hub:
                via_hub = (
                    p for dest, ps in self._prefixes.items() if dest != name and dest not in neighbors for p in ps
                )
                table[peer] = (*self._prefixes[peer], *via_hub)
            elif peer in neighbors:
                table[peer] = self._prefixes[peer]
        return table

    def _static_interface(self, node: Node) -> InterfacePlan:
        settings = self.mesh.settings
        peers = [
            self._peer(node, self.mesh.nodes[name], self.mesh.nodes[name].listen_port or settings.listen_port, allowed)
            for name, allowed in self.static_allowed_ips(node.name).items()
        ]
        return InterfacePlan(
            name=STATIC_INTERFACE,
            address=f"{self.allocations.addresses.get(node.name, '')}/32",
            listen_port=node.listen_port or settings.listen_port,
            mtu=settings.mtu,
            routed=False,
            peers=tuple(peers),
        )

    def crypto_gate(self) -> tuple[str, ...]:
        """Routed mode AllowedIPs: the mesh's summaries plus OSPF multicast.

        Not the exact list of node networks: that would rewrite every tunnel whenever a node is added.
        Summaries come from the SoT (`mesh.summaries`), else the /8s the mesh's prefixes live in.
        """
        if self._gate is None:
            summaries = self.mesh.settings.summaries or sorted(
                {p.supernet(new_prefix=8) for p in self.mesh.overlay_prefixes() if p.version == 4 and p.prefixlen >= 8}
            )
            self._gate = (*(str(p) for p in summaries), OSPF_MULTICAST)
        return self._gate

    def _routed_interfaces(self, node: Node) -> list[InterfacePlan]:
        settings = self.mesh.settings
        out = []
        for tunnel in self._node_tunnels[node.name]:
            tid = self.allocations.tunnel_ids.get(tunnel)
            if tid is None:  # no room in the link pool: reported by allocation
                continue
            side = 0 if tunnel[0] == node.name else 1
            other = self.mesh.nodes[tunnel[1 - side]]
            link = tunnel_link(settings.link_pool, tid)
            port = tunnel_port(settings.listen_port, tid)
            out.append(
                InterfacePlan(
                    name=tunnel_interface(tid),
                    address=str(link[side]),
                    listen_port=port,
                    mtu=settings.mtu,
                    routed=True,
                    peers=(self._peer(node, other, port, self.crypto_gate()),),
                    peer_address=str(link[1 - side].ip),
                    ospf_cost=max(self.cost_of(node), self.cost_of(other)),
                )
            )
        out.sort(key=lambda i: int(i.name.removeprefix("wgt")))
        return out


def settings_keepalive(node: Node, mesh: Mesh) -> int:
    return mesh.settings.keepalive if node.keepalive is None else node.keepalive


def with_known_peers(plan: NodePlan) -> NodePlan:
    """Drop peers whose key is not known yet (never reached): a peer without a key cannot be configured.

    A routed-mode interface left without its one peer is dropped too; the next deploy adds them.
    """
    interfaces = []
    for iface in plan.interfaces:
        peers = tuple(p for p in iface.peers if p.public_key)
        if peers or not iface.routed:
            interfaces.append(replace(iface, peers=peers))
    return replace(plan, interfaces=tuple(interfaces))
