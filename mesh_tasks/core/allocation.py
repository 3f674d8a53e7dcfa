"""Sticky allocation of transit addresses and tunnel ids.

What was allocated before (in the state file) keeps its value as long as its node or tunnel exists;
only new nodes and tunnels take the lowest free value. Removing a node frees its values but moves
nothing else. Everything that depends on a tunnel (its /31, listen port, interface name) derives from
its id, so one sticky number keeps all three stable.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mesh_tasks.core.findings import Finding, error
from mesh_tasks.core.model import Mesh
from mesh_tasks.core.state import MeshState
from mesh_tasks.core.topology import Tunnel

MAX_INTERFACE_NAME = 15  # IFNAMSIZ - 1 on Linux
TUNNEL_PREFIX = "wgt"
STATIC_INTERFACE = "wg0"


@dataclass(frozen=True, slots=True)
class Allocations:
    addresses: dict[str, ipaddress.IPv4Address]
    tunnel_ids: dict[Tunnel, int]


def tunnel_state_key(tunnel: Tunnel) -> str:
    return f"{tunnel[0]}~{tunnel[1]}"


def tunnel_interface(tunnel_id: int) -> str:
    return f"{TUNNEL_PREFIX}{tunnel_id}"


def tunnel_port(base_port: int, tunnel_id: int) -> int:
    return base_port + tunnel_id


def tunnel_link(link_pool: ipaddress.IPv4Network, tunnel_id: int) -> tuple[ipaddress.IPv4Interface, ...]:
    """The /31 of a tunnel: the lower-named node takes the even address."""
    base = link_pool.network_address + 2 * tunnel_id
    return (ipaddress.IPv4Interface(f"{base}/31"), ipaddress.IPv4Interface(f"{base + 1}/31"))


def allocate(mesh: Mesh, state: MeshState, tunnels: list[Tunnel]) -> tuple[Allocations, list[Finding]]:
    findings: list[Finding] = []
    pool = mesh.settings.transit_pool
    addresses: dict[str, ipaddress.IPv4Address] = {}
    taken: set[ipaddress.IPv4Address] = set()
    for node in mesh.nodes.values():  # explicit addresses first: they win over remembered ones
        if node.address is not None:
            if node.address not in pool:
                findings.append(
                    error(node.name, f"nodes.{node.name}.address", f"{node.address} is outside the transit pool {pool}")
                )
            elif node.address in taken:
                other = next(n for n, a in addresses.items() if a == node.address)
                findings.append(
                    error(node.name, f"nodes.{node.name}.address", f"{node.address} is already the address of {other}")
                )
            addresses[node.name] = node.address
            taken.add(node.address)
    pending: list[str] = []
    for name in sorted(mesh.nodes):
        if name in addresses:
            continue
        remembered = state.addresses.get(name)
        addr = ipaddress.IPv4Address(remembered) if remembered else None
        if addr is not None and addr in pool and addr not in taken:
            addresses[name] = addr
            taken.add(addr)
        else:
            pending.append(name)
    free = (a for a in (pool.hosts() if pool.prefixlen < 31 else iter(pool)) if a not in taken)
    for name in pending:
        addr = next(free, None)
        if addr is None:
            findings.append(error(name, "mesh.transit_pool", f"transit pool {pool} is exhausted"))
            continue
        addresses[name] = addr
    return Allocations(addresses, _allocate_tunnels(mesh, state, tunnels, findings)), findings


def _allocate_tunnels(
    mesh: Mesh, state: MeshState, tunnels: list[Tunnel], findings: list[Finding]
) -> dict[Tunnel, int]:
    if mesh.settings.routing != "ospf":
        return {}
    settings = mesh.settings
    capacity = min(settings.link_pool.num_addresses // 2, 65535 - settings.listen_port + 1)
    ids: dict[Tunnel, int] = {}
    used: set[int] = set()
    pending: list[Tunnel] = []
    for tunnel in tunnels:
        remembered = state.tunnels.get(tunnel_state_key(tunnel))
        if remembered is not None and remembered not in used and remembered < capacity:
            ids[tunnel] = remembered
            used.add(remembered)
        else:
            pending.append(tunnel)
    next_id = 0
    for tunnel in pending:
        while next_id in used:
            next_id += 1
        if next_id >= capacity:
            findings.append(
                error(
                    "mesh",
                    "mesh.link_pool",
                    f"no room for tunnel {tunnel[0]}<->{tunnel[1]}: link pool {settings.link_pool} and "
                    f"ports from {settings.listen_port} allow {capacity} tunnels",
                )
            )
            break
        ids[tunnel] = next_id
        used.add(next_id)
    return ids


def remember(state: MeshState, allocations: Allocations) -> MeshState:
    """The state to write after a successful plan: current allocations only (removed ones are freed)."""
    return MeshState(
        public_keys={k: v for k, v in state.public_keys.items() if k in allocations.addresses},
        addresses={n: str(a) for n, a in allocations.addresses.items()},
        tunnels={tunnel_state_key(t): i for t, i in allocations.tunnel_ids.items()},
        rotations=dict(state.rotations),
    )
