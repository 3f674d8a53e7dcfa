"""Properties over random meshes (2..30 nodes, both routing modes, both topologies, NAT, shortcuts).

Every generated mesh is valid by construction, so "validates without errors" is itself asserted: a
validator that rejects one of these is a false positive worth knowing about.
Set HYPOTHESIS_EXAMPLES to run more examples (e.g. 500) than the quick default.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh_tasks.core.findings import Finding, MeshInputError, Severity
from mesh_tasks.core.model import MESH_KEYS, NODE_KEYS, parse_mesh
from mesh_tasks.core.plan import MeshPlan, NodePlan
from mesh_tasks.core.render import render_node
from mesh_tasks.core.state import MeshState
from mesh_tasks.core.validation import validate

from .meshes import errors
from .strategies import ROUTINGS, TOPOLOGIES, mesh_dicts, new_node, states

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "30"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
modes = st.tuples(st.sampled_from(ROUTINGS), st.sampled_from(TOPOLOGIES))


def checked(data: dict[str, Any], state: MeshState | None = None) -> tuple[MeshPlan, list[Finding]]:
    plan = MeshPlan(parse_mesh(copy.deepcopy(data)), state)
    findings = validate(plan)
    assert not errors(findings), errors(findings)
    return plan, findings


def render_all(plan: MeshPlan) -> dict[str, dict[str, str]]:
    return {n: render_node(plan.node(n), plan.mesh.settings.name) for n in plan.mesh.nodes}


class Routes:
    """One node's wg0 as a longest-prefix-match table (integer keys: fast enough for 30-node meshes)."""

    def __init__(self, plan: NodePlan) -> None:
        self.table: dict[tuple[int, int, int], str] = {}
        for _, peer in plan.peers():
            for prefix in peer.allowed_ips:
                net = ipaddress.ip_network(prefix)
                self.table[(net.version, net.prefixlen, int(net.network_address))] = peer.node

    def lookup(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        bits = address.max_prefixlen
        value = int(address)
        for plen in range(bits, -1, -1):
            key = (address.version, plen, (value >> (bits - plen)) << (bits - plen))
            if key in self.table:
                return self.table[key]
        return None


# --- AllowedIPs ownership ---------------------------------------------------------------------------


@PROPERTY
@given(data=modes.flatmap(lambda m: mesh_dicts(routing=m[0], topology=m[1])))
def test_no_prefix_on_two_peers_and_every_nesting_is_warned(data: dict[str, Any]) -> None:
    plan, findings = checked(data)
    owner = {p: n for n in plan.mesh.nodes for p in plan.prefixes(n)}
    warnings = [f for f in findings if f.severity is Severity.WARNING]
    static = plan.mesh.settings.routing == "static"
    for name in plan.mesh.nodes:
        for iface in plan.node(name).interfaces:
            holder: dict[str, str] = {}
            for peer in iface.peers:
                for prefix in peer.allowed_ips:
                    assert holder.setdefault(prefix, peer.node) == peer.node, (name, iface.name, prefix)
            if not static:
                assert len(iface.peers) == 1
                continue
            nets = sorted(((ipaddress.ip_network(p), n) for p, n in holder.items()), key=lambda t: t[0].prefixlen)
            for i, (outer, outer_peer) in enumerate(nets):
                for inner, inner_peer in nets[i + 1 :]:
                    if inner_peer == outer_peer or inner.version != outer.version or not inner.subnet_of(outer):
                        continue
                    a, b = owner[str(outer)], owner[str(inner)]
                    assert any(
                        w.node == a and f" {inner} goes to {b} " in w.message and f"rest of {outer} " in w.message
                        for w in warnings
                    ), f"{name}: {inner} via {inner_peer} inside {outer} via {outer_peer}, not warned"


# --- reachability -----------------------------------------------------------------------------------


def tunnel_ok(plan: MeshPlan, plans: dict[str, NodePlan], a: str, b: str) -> bool:
    """A real tunnel: both ends list each other, and at least one end can be reached."""
    peers_a = {p.node for _, p in plans[a].peers()}
    peers_b = {p.node for _, p in plans[b].peers()}
    has_endpoint = plan.mesh.nodes[a].endpoint is not None or plan.mesh.nodes[b].endpoint is not None
    return b in peers_a and a in peers_b and has_endpoint


@PROPERTY
@given(data=st.sampled_from(TOPOLOGIES).flatmap(lambda t: mesh_dicts(routing="static", topology=t)))
def test_static_next_hops_reach_every_node_within_two_hops(data: dict[str, Any]) -> None:
    plan, _ = checked(data)
    plans = {n: plan.node(n) for n in plan.mesh.nodes}
    tables = {n: Routes(p) for n, p in plans.items()}
    for dest in plan.mesh.nodes:
        node = plan.mesh.nodes[dest]
        targets = [plan.allocations.addresses[dest], *(net.network_address for net in (*node.networks, *node.routes))]
        for src in plan.mesh.nodes:
            if src == dest:
                continue
            for address in targets:
                path = [src]
                while path[-1] != dest:
                    hop = tables[path[-1]].lookup(address)
                    assert hop is not None, f"{path}: no route to {address} ({dest})"
                    assert tunnel_ok(plan, plans, path[-1], hop), f"{path} -> {hop}: not a usable tunnel"
                    path.append(hop)
                    assert len(path) <= 3, f"{address} ({dest}) from {src}: {path}"


@PROPERTY
@given(data=st.sampled_from(TOPOLOGIES).flatmap(lambda t: mesh_dicts(routing="ospf", topology=t)))
def test_routed_tunnel_graph_connects_everyone_within_two_hops(data: dict[str, Any]) -> None:
    plan, _ = checked(data)
    plans = {n: plan.node(n) for n in plan.mesh.nodes}
    adjacent = {n: {p.node for _, p in np.peers()} for n, np in plans.items()}
    for a in plan.mesh.nodes:
        for b in adjacent[a]:
            assert tunnel_ok(plan, plans, a, b)
        two_hops = adjacent[a].union(*(adjacent[x] for x in adjacent[a]))
        assert two_hops | {a} == set(plan.mesh.nodes)


# --- routed mode: the two ends of every tunnel agree -------------------------------------------------


@PROPERTY
@given(data=st.sampled_from(TOPOLOGIES).flatmap(lambda t: mesh_dicts(routing="ospf", topology=t)), draw=st.data())
def test_routed_tunnel_ends_match(data: dict[str, Any], draw: st.DataObject) -> None:
    state = draw.draw(states(data))
    plan, _ = checked(data, state)
    ends: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for name in plan.mesh.nodes:
        np = plan.node(name)
        assert len({i.name for i in np.interfaces}) == len(np.interfaces)
        assert len(np.interfaces) == len(plan.neighbors[name])
        assert np.ospf is not None and np.ospf.router_id == np.address
        for iface in np.interfaces:
            assert len(iface.name) <= 15
            [peer] = iface.peers
            assert peer.public_key == state.public_keys.get(peer.node)
            ends[iface.name].append((name, iface))
    assert len(ends) == len(plan.tunnels)
    ports = set()
    for (a, ia), (b, ib) in ends.values():
        assert (ia.peers[0].node, ib.peers[0].node) == (b, a)
        assert ia.listen_port == ib.listen_port
        ports.add(ia.listen_port)
        la, lb = ipaddress.ip_interface(ia.address), ipaddress.ip_interface(ib.address)
        assert la.network == lb.network and la.network.prefixlen == 31 and la.ip != lb.ip
        assert (ia.peer_address, ib.peer_address) == (str(lb.ip), str(la.ip))
        assert ia.ospf_cost == ib.ospf_cost
    assert len(ports) == len(plan.tunnels)  # one port per tunnel, mesh-wide


# --- rendering ------------------------------------------------------------------------------------------


@PROPERTY
@given(data=modes.flatmap(lambda m: mesh_dicts(routing=m[0], topology=m[1])), draw=st.data())
def test_rendering_is_deterministic_and_keyless(data: dict[str, Any], draw: st.DataObject) -> None:
    state = draw.draw(states(data))
    plan, findings = checked(data, state)
    first = render_all(plan)
    assert render_all(plan) == first
    again, again_findings = checked(copy.deepcopy(data), MeshState.from_dict(state.as_dict()))
    assert render_all(again) == first
    assert again_findings == findings
    for files in first.values():
        for text in files.values():
            assert not re.search(r"(?im)^\s*PrivateKey\s*=", text)
            assert "PrivateKey" not in text


# --- stickiness -------------------------------------------------------------------------------------


def without_allowed_ips(files: dict[str, str]) -> dict[str, str]:
    return {path: re.sub(r"(?m)^AllowedIPs = .*$", "AllowedIPs = ...", text) for path, text in files.items()}


def check_sticky(before: MeshPlan, after: MeshPlan, changed: str) -> None:
    """Only `changed` (added or removed) and its peers may change; nothing else moves.

    Known, tolerated exceptions (see test_stickiness_bug_*): in static mode a non-peer's AllowedIPs toward
    its primary hub gain/lose exactly the changed node's prefixes (static routes must list them); in
    ospf mode the crypto gate is the collapsed overlay, so every AllowedIPs line may change.
    """
    static = before.mesh.settings.routing == "static"
    common = [n for n in before.mesh.nodes if n in after.mesh.nodes]
    touched = {changed, *before.neighbors.get(changed, []), *after.neighbors.get(changed, [])}
    moved_prefixes = set(before.prefixes(changed) if changed in before.mesh.nodes else after.prefixes(changed))
    for name in common:
        assert before.allocations.addresses[name] == after.allocations.addresses[name], name
    for tunnel, tid in before.allocations.tunnel_ids.items():
        if tunnel in after.allocations.tunnel_ids:
            assert after.allocations.tunnel_ids[tunnel] == tid, tunnel
    for name in common:
        old_plan, new_plan = before.node(name), after.node(name)
        old_ifaces = {(i.name, i.address, i.listen_port, i.peer_address, i.peers[0].node) for i in old_plan.interfaces}
        new_ifaces = {(i.name, i.address, i.listen_port, i.peer_address, i.peers[0].node) for i in new_plan.interfaces}
        if not static:  # every surviving tunnel keeps its interface name, /31 and port
            gone = {t for t in old_ifaces if t[4] == changed}
            assert old_ifaces - gone <= new_ifaces, name
        if name in touched:
            continue
        old, new = render_node(old_plan, "t"), render_node(new_plan, "t")
        assert without_allowed_ips(old) == without_allowed_ips(new), name
        if static:
            old_peers = {p.node: set(p.allowed_ips) for _, p in old_plan.peers()}
            new_peers = {p.node: set(p.allowed_ips) for _, p in new_plan.peers()}
            assert old_peers.keys() == new_peers.keys()
            for peer, old_ips in old_peers.items():
                assert old_ips ^ new_peers[peer] <= moved_prefixes, (name, peer)
                if old_ips != new_peers[peer]:
                    assert peer == before.primary_hub == after.primary_hub


@PROPERTY
@given(data=modes.flatmap(lambda m: mesh_dicts(routing=m[0], topology=m[1], max_nodes=20)))
def test_adding_a_node_moves_nothing_else(data: dict[str, Any]) -> None:
    before, _ = checked(data)
    name, spec = new_node(data)
    grown = copy.deepcopy(data)
    grown["nodes"][name] = spec
    after, _ = checked(grown, before.next_state())
    check_sticky(before, after, name)
    new_ifaces = after.node(name).interfaces
    assert {i.name for i in new_ifaces}.isdisjoint(
        {i.name for n in before.mesh.nodes for i in before.node(n).interfaces}
    ) or before.mesh.settings.routing == "static"


@PROPERTY
@given(data=modes.flatmap(lambda m: mesh_dicts(routing=m[0], topology=m[1], min_nodes=3, max_nodes=20)), draw=st.data())
def test_removing_a_node_moves_nothing_else(data: dict[str, Any], draw: st.DataObject) -> None:
    before, _ = checked(data)
    hubs_with_endpoint = [n for n, d in data["nodes"].items() if d["role"] == "hub" and "endpoint" in d]
    removable = [
        n
        for n, d in data["nodes"].items()
        if data["mesh"]["topology"] == "full-mesh" or d["role"] == "spoke" or len(hubs_with_endpoint) > 1
    ]
    gone = draw.draw(st.sampled_from(removable))
    shrunk = copy.deepcopy(data)
    del shrunk["nodes"][gone]
    shrunk["links"] = [link for link in shrunk.get("links", []) if gone not in link]
    after, _ = checked(shrunk, before.next_state())
    check_sticky(before, after, gone)


# --- the overlap trap, seen from the plan --------------------------------------------------------


@PROPERTY
@given(
    data=st.sampled_from(TOPOLOGIES).flatmap(lambda t: mesh_dicts(routing="static", topology=t, max_nodes=12)),
    draw=st.data(),
)
def test_a_prefix_on_two_peers_is_always_an_error(data: dict[str, Any], draw: st.DataObject) -> None:
    """Give two random nodes the same route; wherever the plan then puts it on two peers, validation errs."""
    names = list(data["nodes"])
    a, b = draw.draw(st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True))
    for name in (a, b):
        data["nodes"][name].setdefault("routes", []).append("192.168.77.0/24")
    plan = MeshPlan(parse_mesh(data))
    findings = validate(plan)
    split = [
        name
        for name in plan.mesh.nodes
        for iface in plan.node(name).interfaces
        if len({p.node for p in iface.peers if "192.168.77.0/24" in p.allowed_ips}) > 1
    ]
    trap = [f for f in errors(findings) if "overlap trap" in f.message and "192.168.77.0/24" in f.message]
    if split:
        assert len(trap) == 1
        assert {a, b} <= set(re.findall(r"routed to both (\S+) and (\S+) on", trap[0].message)[0])
    else:
        assert trap == []


# --- robustness: mangled input is findings, never a crash -------------------------------------------

WEIRD = [
    None,
    "",
    0,
    -1,
    1,
    70000,
    True,
    "x",
    [],
    {},
    ["x"],
    "10.0.0.0/8",
    "0.0.0.0/0",
    "::/0",
    "10.255.0.9",
    "2001:db8::1:51820",
    "[2001:db8::1]:1",
    "198.51.100.1:",
    "hub",
    "spoke",
    25,
    ["10.1.0.0/24"],
]


@PROPERTY
@given(data=modes.flatmap(lambda m: mesh_dicts(routing=m[0], topology=m[1], max_nodes=8)), draw=st.data())
def test_mangled_input_yields_findings_not_crashes(data: dict[str, Any], draw: st.DataObject) -> None:
    for _ in range(draw.draw(st.integers(1, 4))):
        if draw.draw(st.booleans()):
            name = draw.draw(st.sampled_from(sorted(data["nodes"])))
            data["nodes"][name][draw.draw(st.sampled_from(NODE_KEYS))] = draw.draw(st.sampled_from(WEIRD))
        else:
            data["mesh"][draw.draw(st.sampled_from(MESH_KEYS))] = draw.draw(st.sampled_from(WEIRD))
    try:
        mesh = parse_mesh(data)
    except MeshInputError as exc:
        assert exc.findings
        assert all(f.severity is Severity.ERROR and f.field for f in exc.findings)
        return
    plan = MeshPlan(mesh)
    findings = validate(plan)
    if not errors(findings):
        render_all(plan)
