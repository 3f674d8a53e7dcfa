"""Which pairs of nodes get a tunnel: the topology plus explicit shortcut links."""

from __future__ import annotations

from itertools import combinations

from mesh_tasks.core.model import Mesh

Tunnel = tuple[str, str]  # always (lower name, higher name)


def tunnel_key(a: str, b: str) -> Tunnel:
    return (a, b) if a < b else (b, a)


def tunnels(mesh: Mesh) -> list[Tunnel]:
    """Every tunnel, sorted, deduplicated. Links naming unknown nodes are left to validation."""
    names = list(mesh.nodes)
    if mesh.settings.topology == "full-mesh":
        ordered = combinations(sorted(names), 2)  # already (lower, higher), unique and sorted
        if not mesh.links:
            return list(ordered)
        pairs = set(ordered)
    else:
        hubs = [n.name for n in mesh.hubs()]
        spokes = [n for n in names if mesh.nodes[n].role == "spoke"]
        pairs = {tunnel_key(a, b) for a, b in combinations(hubs, 2)}
        pairs.update(tunnel_key(h, s) for h in hubs for s in spokes)
    for a, b in mesh.links:
        if a != b and a in mesh.nodes and b in mesh.nodes:
            pairs.add(tunnel_key(a, b))
    return sorted(pairs)
