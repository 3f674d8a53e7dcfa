"""Hypothesis strategies: random meshes that are valid by construction.

Node k (k = 1..n) owns management 192.0.2.k, endpoint 198.51.100.k and networks 10.k.j.0/24, so
prefixes never overlap unless a test asks for it (the optional 10.0.0.0/8 "wide route" in static mode,
which is a deliberate longest-prefix ambiguity). File order is a random permutation of name order, and
names may be far longer than IFNAMSIZ, so nothing may derive interface names from node names.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mesh_tasks.core.state import MeshState

from .meshes import fake_key, sot

ROUTINGS = ("static", "ospf")
TOPOLOGIES = ("full-mesh", "hub-and-spoke")
NAME_STEMS = ("n", "site-", "a-node-name-far-longer-than-ifnamsiz-")
WIDE_ROUTE = "10.0.0.0/8"


def node_name(stem: str, k: int) -> str:
    return f"{stem}{k:02d}"


@st.composite
def mesh_dicts(
    draw: st.DrawFn,
    routing: str | None = None,
    topology: str | None = None,
    min_nodes: int = 2,
    max_nodes: int = 30,
) -> dict[str, Any]:
    routing = routing or draw(st.sampled_from(ROUTINGS))
    topology = topology or draw(st.sampled_from(TOPOLOGIES))
    static = routing == "static"
    n = draw(st.integers(min_nodes, max_nodes))
    stem = draw(st.sampled_from(NAME_STEMS))
    numbers = draw(st.permutations(range(1, n + 1)))  # file position -> node number (names sort by number)

    if topology == "hub-and-spoke":
        hub_count = draw(st.integers(1, min(4, n)))
        hubs = set(draw(st.permutations(numbers))[:hub_count])
    else:
        hubs = set(draw(st.lists(st.sampled_from(numbers), max_size=3)))

    if topology == "full-mesh":  # any two endpoint-less nodes would share a tunnel: allow one
        lone = draw(st.one_of(st.none(), st.sampled_from(numbers)))
        endpointless = {lone} if lone is not None else set()
    else:  # hubs always have an endpoint; any spoke may be behind NAT without one
        endpointless = {k for k in numbers if k not in hubs and draw(st.booleans())}

    wide_owner = draw(st.one_of(st.none(), st.sampled_from(numbers))) if static else None
    nodes: dict[str, dict[str, Any]] = {}
    for k in numbers:
        data: dict[str, Any] = {"role": "hub" if k in hubs else "spoke", "management": f"192.0.2.{k}"}
        if k not in endpointless:
            port = draw(st.one_of(st.none(), st.just(40000 + k))) if static else None
            data["endpoint"] = f"198.51.100.{k}" + (f":{port}" if port else "")
        data["nat"] = k in endpointless or draw(st.booleans())
        networks = [f"10.{k}.{j}.0/24" for j in range(draw(st.integers(0, 2)))]
        if static and draw(st.booleans()):
            networks.append(f"2001:db8:{k:x}::/48")
        data["networks"] = networks
        if static:
            routes = [f"172.{16 + k}.0.0/16"] if draw(st.booleans()) else []
            if k == wide_owner:
                routes.append(WIDE_ROUTE)
            if routes:
                data["routes"] = routes
            if draw(st.booleans()):
                data["listen_port"] = 51000 + k
        cost = draw(st.one_of(st.none(), st.integers(1, 200)))
        if cost is not None:
            data["ospf_cost"] = cost
        nodes[node_name(stem, k)] = data

    candidates = [
        (a, b)
        for a in numbers
        for b in numbers
        if a < b and not (a in endpointless and b in endpointless) and not (a in hubs or b in hubs)
    ]
    links = draw(st.lists(st.sampled_from(candidates), max_size=6, unique=True)) if candidates else []
    pairs = [[node_name(stem, a), node_name(stem, b)] for a, b in links]
    keepalive = draw(st.sampled_from([15, 25]))
    return sot(nodes, routing=routing, topology=topology, links=pairs, keepalive=keepalive)


@st.composite
def states(draw: st.DrawFn, data: dict[str, Any]) -> MeshState:
    """Public keys for a random subset of the nodes (the rest are still pending)."""
    names = sorted(data["nodes"])
    known = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    return MeshState(public_keys={n: fake_key(n) for n in known})


def new_node(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A spoke that fits any generated mesh: fresh number, endpoint and networks."""
    k = 200
    while f"192.0.2.{k}" in {n["management"] for n in data["nodes"].values()}:
        k += 1
    static = data["mesh"]["routing"] == "static"
    node = {
        "role": "spoke",
        "management": f"192.0.2.{k}",
        "endpoint": f"198.51.100.{k}",
        "nat": False,
        "networks": [f"10.{k}.0.0/24"],
    }
    if static:
        node["routes"] = [f"192.168.{k - 100}.0/24"]
    return f"new-spoke-{k}", node
