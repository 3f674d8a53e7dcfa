"""Plan facts: what each node runs, for both routing modes and both topologies."""

from __future__ import annotations

import ipaddress
import re

import pytest

from mesh_tasks.core.allocation import MAX_INTERFACE_NAME
from mesh_tasks.core.plan import OSPF_MULTICAST
from mesh_tasks.core.render import render_node
from mesh_tasks.core.state import MeshState

from .meshes import fake_key, node, peer_of, sot, three_spokes_two_hubs, valid_plan


def full_mesh(n: int = 4, **kw) -> dict:
    return sot({f"n{i}": node(i) for i in range(1, n + 1)}, **kw)


# --- static full mesh ----------------------------------------------------------------------------


def test_static_full_mesh_allowed_ips_are_each_peers_own_prefixes() -> None:
    data = full_mesh(4)
    data["nodes"]["n2"]["networks"] = ["10.2.0.0/24", "2001:db8:2::/48"]
    data["nodes"]["n3"]["routes"] = ["172.16.3.0/24"]
    plan = valid_plan(data)
    for name in plan.mesh.nodes:
        np = plan.node(name)
        [iface] = np.interfaces
        assert iface.name == "wg0"
        assert iface.address == f"{np.address}/32"
        assert not iface.routed
        assert [p.node for p in iface.peers] == [n for n in plan.mesh.nodes if n != name]
        for peer in iface.peers:
            other = plan.mesh.nodes[peer.node]
            address = plan.allocations.addresses[peer.node]
            expected = [f"{address}/32", *map(str, other.networks), *map(str, other.routes)]
            assert list(peer.allowed_ips) == expected
            assert peer.endpoint == f"198.51.100.{peer.node[1:]}:51820"
            assert peer.keepalive is None


def test_transit_addresses_are_allocated_in_name_order_from_the_pool() -> None:
    plan = valid_plan(sot({"b": node(2), "a": node(1), "c": node(3, address="10.255.0.1")}))
    assert {n: str(a) for n, a in plan.allocations.addresses.items()} == {
        "c": "10.255.0.1",
        "a": "10.255.0.2",
        "b": "10.255.0.3",
    }


def test_static_listen_ports_and_peer_endpoint_ports() -> None:
    data = full_mesh(3)
    data["nodes"]["n1"]["listen_port"] = 51900
    data["nodes"]["n2"]["endpoint"] = "198.51.100.2:4500"  # NAT port forward: public port differs
    plan = valid_plan(data)
    assert plan.node("n1").interfaces[0].listen_port == 51900
    assert plan.node("n3").interfaces[0].listen_port == 51820
    assert peer_of(plan.node("n3"), "n1").endpoint == "198.51.100.1:51900"
    assert peer_of(plan.node("n3"), "n2").endpoint == "198.51.100.2:4500"


# --- static hub-and-spoke ------------------------------------------------------------------------


def prefixes(plan, name: str) -> list[str]:
    return [f"{plan.allocations.addresses[name]}/32", *map(str, plan.mesh.nodes[name].networks)]


def test_spokes_peer_only_with_hubs_and_the_primary_hub_carries_the_rest() -> None:
    plan = valid_plan(three_spokes_two_hubs())
    assert plan.primary_hub == "hub1"
    for spoke in ("spoke1", "spoke2", "spoke3"):
        np = plan.node(spoke)
        assert [p.node for _, p in np.peers()] == ["hub1", "hub2"]
        others = [n for n in plan.mesh.nodes if n not in (spoke, "hub1", "hub2")]
        hub1 = peer_of(np, "hub1").allowed_ips
        assert list(hub1) == prefixes(plan, "hub1") + [p for o in others for p in prefixes(plan, o)]
        assert list(peer_of(np, "hub2").allowed_ips) == prefixes(plan, "hub2")
    for hub in ("hub1", "hub2"):
        np = plan.node(hub)
        assert {p.node for _, p in np.peers()} == set(plan.mesh.nodes) - {hub}
        for _, peer in np.peers():
            assert list(peer.allowed_ips) == prefixes(plan, peer.node)


@pytest.mark.parametrize(
    ("costs", "primary"),
    [
        ({"hub1": 100, "hub2": 10}, "hub2"),
        ({"hub1": 10, "hub2": 10}, "hub1"),
        ({"hub2": 10}, "hub1"),  # hub1 takes the mesh default cost, 10: a tie, file order wins
        ({"hub1": 11}, "hub2"),
        ({}, "hub1"),
    ],
)
def test_primary_hub_is_lowest_cost_then_file_order(costs: dict[str, int], primary: str) -> None:
    data = three_spokes_two_hubs()
    for hub in ("hub1", "hub2"):
        data["nodes"][hub].pop("ospf_cost")
        if hub in costs:
            data["nodes"][hub]["ospf_cost"] = costs[hub]
    plan = valid_plan(data)
    assert plan.primary_hub == primary
    spoke1 = plan.node("spoke1")
    assert prefixes(plan, "spoke2")[1] in peer_of(spoke1, primary).allowed_ips


def test_primary_hub_ties_follow_file_order_not_names() -> None:
    data = three_spokes_two_hubs()
    nodes = data["nodes"]
    data["nodes"] = {"zhub": {**nodes.pop("hub2"), "ospf_cost": 5}, "ahub": {**nodes.pop("hub1"), "ospf_cost": 5}}
    data["nodes"].update(nodes)
    assert valid_plan(data).primary_hub == "zhub"


def test_shortcut_moves_exactly_that_spokes_prefixes() -> None:
    without = valid_plan(three_spokes_two_hubs())
    with_link = valid_plan(three_spokes_two_hubs(links=[["spoke1", "spoke2"]]))
    for a, b in (("spoke1", "spoke2"), ("spoke2", "spoke1")):
        before, after = without.node(a), with_link.node(a)
        assert [p.node for _, p in after.peers()] == ["hub1", "hub2", b]
        moved = prefixes(with_link, b)
        assert list(peer_of(after, b).allowed_ips) == moved
        assert list(peer_of(after, "hub1").allowed_ips) == [
            p for p in peer_of(before, "hub1").allowed_ips if p not in moved
        ]
        assert peer_of(after, "hub2") == peer_of(before, "hub2")
    # nobody else notices
    for name in ("hub1", "hub2", "spoke3"):
        assert with_link.node(name) == without.node(name)


def test_static_keepalive_only_from_the_unreachable_side_toward_endpoints() -> None:
    data = three_spokes_two_hubs(links=[["spoke1", "spoke3"]], keepalive=21)
    data["nodes"]["spoke2"]["nat"] = True  # NATed but port-forwarded: it has an endpoint
    data["nodes"]["spoke2"]["keepalive"] = 7
    plan = valid_plan(data)
    ka = {(n, p.node): p.keepalive for n in plan.mesh.nodes for _, p in plan.node(n).peers()}
    assert {k: v for k, v in ka.items() if v is not None} == {
        ("spoke2", "hub1"): 7,
        ("spoke2", "hub2"): 7,
        ("spoke3", "hub1"): 21,
        ("spoke3", "hub2"): 21,
        ("spoke3", "spoke1"): 21,
    }
    # nobody sends to spoke3: it has no endpoint
    assert all(p.endpoint is None for n in plan.mesh.nodes for _, p in plan.node(n).peers() if p.node == "spoke3")


def test_endpointless_node_with_keepalive_zero_gets_none() -> None:
    data = sot({"a": node(1), "b": node(2, endpoint=None, keepalive=0)})
    plan = valid_plan(data)
    assert peer_of(plan.node("b"), "a").keepalive is None


def test_forwarding_only_where_traffic_passes_through() -> None:
    data = three_spokes_two_hubs()
    data["nodes"]["spoke1"]["networks"] = []
    plan = valid_plan(data)
    assert plan.node("hub2").forwarding
    assert plan.node("spoke2").forwarding
    assert not plan.node("spoke1").forwarding
    assert all(valid_plan(three_spokes_two_hubs(routing="ospf")).node(n).forwarding for n in plan.mesh.nodes)


def test_public_keys_from_state_reach_the_peers() -> None:
    state = MeshState(public_keys={n: fake_key(n) for n in ("hub1", "spoke1")})
    plan = valid_plan(three_spokes_two_hubs(), state)
    assert plan.node("hub1").public_key == fake_key("hub1")
    assert peer_of(plan.node("hub2"), "spoke1").public_key == fake_key("spoke1")
    assert peer_of(plan.node("hub2"), "spoke2").public_key is None


# --- routed (ospf) mode --------------------------------------------------------------------------


def test_routed_mode_one_interface_per_tunnel() -> None:
    data = three_spokes_two_hubs(routing="ospf", links=[["spoke1", "spoke2"]])
    plan = valid_plan(data)
    link_pool = ipaddress.ip_network("10.254.0.0/16")
    seen = {}
    for name in plan.mesh.nodes:
        np = plan.node(name)
        names = [i.name for i in np.interfaces]
        assert len(names) == len(set(names))
        assert len(np.interfaces) == len(plan.neighbors[name])
        for iface in np.interfaces:
            assert len(iface.name) <= MAX_INTERFACE_NAME
            assert iface.routed
            [peer] = iface.peers
            tid = int(iface.name.removeprefix("wgt"))
            assert iface.listen_port == 51820 + tid
            local = ipaddress.ip_interface(iface.address)
            assert local.network.prefixlen == 31 and local.network.subnet_of(link_pool)
            assert iface.peer_address in [str(h) for h in local.network] and iface.peer_address != str(local.ip)
            # the lower name takes the even address
            assert (int(local.ip) % 2 == 0) == (name < peer.node)
            costs = [plan.cost_of(plan.mesh.nodes[n]) for n in (name, peer.node)]
            assert iface.ospf_cost == max(costs)
            other = plan.mesh.nodes[peer.node]
            assert peer.endpoint == (f"{other.endpoint.host}:{iface.listen_port}" if other.endpoint else None)
            assert peer.allowed_ips == plan.crypto_gate()
            seen.setdefault(iface.name, []).append((name, peer.node, iface.listen_port, local.network))
    for ends in seen.values():
        assert len(ends) == 2
        (a, pa, port_a, net_a), (b, pb, port_b, net_b) = ends
        assert (a, b) == (pb, pa) and port_a == port_b and net_a == net_b


def test_routed_costs_are_the_max_of_both_ends() -> None:
    plan = valid_plan(three_spokes_two_hubs(routing="ospf"))
    costs = {(n, i.peers[0].node): i.ospf_cost for n in plan.mesh.nodes for i in plan.node(n).interfaces}
    assert costs[("spoke1", "hub1")] == 10
    assert costs[("spoke1", "hub2")] == 100
    assert costs[("hub1", "hub2")] == 100


def test_routed_frr_settings() -> None:
    data = three_spokes_two_hubs(routing="ospf", ospf={"area": "0.0.0.1", "hello_interval": 2, "dead_interval": 8})
    data["nodes"]["spoke1"]["networks"] = ["10.11.0.0/24", "10.111.0.0/24"]
    plan = valid_plan(data)
    np = plan.node("spoke1")
    assert np.ospf is not None
    assert np.ospf.router_id == np.address == str(plan.allocations.addresses["spoke1"])
    assert np.ospf.networks == ("10.254.0.0/16", "10.11.0.0/24", "10.111.0.0/24")
    assert (np.ospf.area, np.ospf.hello_interval, np.ospf.dead_interval) == ("0.0.0.1", 2, 8)
    assert valid_plan(three_spokes_two_hubs()).node("spoke1").ospf is None


def test_crypto_gate_covers_the_overlay_and_ospf_hellos() -> None:
    plan = valid_plan(three_spokes_two_hubs(routing="ospf"))
    gate = [ipaddress.ip_network(p) for p in plan.crypto_gate()]
    assert ipaddress.ip_network(OSPF_MULTICAST) in gate
    must = ["10.255.0.0/24", "10.254.0.0/16", "10.1.0.0/24", "10.13.0.0/24"]
    for prefix in map(ipaddress.ip_network, must):
        assert any(prefix.subnet_of(g) for g in gate), prefix


def test_routed_keepalive_only_from_the_nat_spoke() -> None:
    plan = valid_plan(three_spokes_two_hubs(routing="ospf"))
    ka = {(n, i.peers[0].node) for n in plan.mesh.nodes for i in plan.node(n).interfaces if i.peers[0].keepalive}
    assert ka == {("spoke3", "hub1"), ("spoke3", "hub2")}


def test_tunnel_ids_are_sticky_and_fill_holes() -> None:
    data = three_spokes_two_hubs(routing="ospf")
    first = valid_plan(data)
    state = first.next_state()
    assert set(state.tunnels.values()) == set(range(len(first.tunnels)))
    del data["nodes"]["spoke1"]
    second = valid_plan(data, state)
    for tunnel, tid in second.allocations.tunnel_ids.items():
        assert first.allocations.tunnel_ids[tunnel] == tid
    data["nodes"]["spoke9"] = node(19)
    third = valid_plan(data, second.next_state())
    freed = {first.allocations.tunnel_ids[t] for t in first.tunnels if "spoke1" in t}
    new = {tid for t, tid in third.allocations.tunnel_ids.items() if "spoke9" in t}
    assert new == freed


def test_explicit_address_wins_over_remembered() -> None:
    data = sot({"a": node(1), "b": node(2)})
    state = valid_plan(data).next_state()
    assert state.addresses == {"a": "10.255.0.1", "b": "10.255.0.2"}
    data["nodes"]["b"]["address"] = "10.255.0.1"
    plan = valid_plan(data, state)
    assert str(plan.allocations.addresses["b"]) == "10.255.0.1"
    assert str(plan.allocations.addresses["a"]) == "10.255.0.2"  # the lowest free one (b's old one)


def test_next_state_drops_removed_nodes_keeps_keys() -> None:
    data = sot({"a": node(1), "b": node(2), "c": node(3)})
    state = MeshState(public_keys={n: fake_key(n) for n in "abc"}, rotations={"a": {"step": 1}})
    del data["nodes"]["b"]
    nxt = valid_plan(data, state).next_state()
    assert set(nxt.public_keys) == {"a", "c"}
    assert set(nxt.addresses) == {"a", "c"}
    assert nxt.rotations == {"a": {"step": 1}}


def test_overlay_prefixes_collapse() -> None:
    data = sot({"a": node(1, networks=["10.1.0.0/25", "10.1.0.128/25", "2001:db8::/48"]), "b": node(2)})
    mesh = valid_plan(data).mesh
    assert [str(p) for p in mesh.overlay_prefixes()] == ["10.1.0.0/24", "10.2.0.0/24", "10.255.0.0/24", "2001:db8::/48"]


# --- rendering -------------------------------------------------------------------------------------


def test_render_static_node() -> None:
    state = MeshState(public_keys={"hub1": fake_key("hub1")})
    plan = valid_plan(three_spokes_two_hubs(), state)
    files = render_node(plan.node("spoke3"), "t")
    assert list(files) == ["/etc/wireguard/wg0.conf"]
    text = files["/etc/wireguard/wg0.conf"]
    assert "PrivateKey" not in text
    assert "PostUp = wg set %i private-key /etc/wireguard/private.key" in text
    assert f"PublicKey = {fake_key('hub1')}" in text
    assert "# PublicKey pending: hub2" in text
    assert "Endpoint = 198.51.100.1:51820" in text
    assert "PersistentKeepalive = 25" in text
    assert "Table = off" not in text
    assert text.count("[Peer]") == 2
    assert text.endswith("\n")


def test_render_routed_node() -> None:
    plan = valid_plan(three_spokes_two_hubs(routing="ospf"))
    files = render_node(plan.node("spoke1"), "t")
    assert sorted(files) == sorted(
        [f"/etc/wireguard/{i.name}.conf" for i in plan.node("spoke1").interfaces] + ["/etc/frr/frr.conf"]
    )
    for path, text in files.items():
        assert "PrivateKey" not in text
        if path.startswith("/etc/wireguard/"):
            assert "Table = off" in text and text.count("[Peer]") == 1
    frr = files["/etc/frr/frr.conf"]
    assert "ospf router-id 10.255.0.3" in frr  # spoke1 sorts after hub1, hub2
    assert " network 10.254.0.0/16 area 0.0.0.0" in frr and " network 10.11.0.0/24 area 0.0.0.0" in frr
    blocks = dict(re.findall(r"(?ms)^interface (\S+)\n(.*?)^exit", frr))
    assert set(blocks) == {i.name for i in plan.node("spoke1").interfaces}
    for iface in plan.node("spoke1").interfaces:
        block = blocks[iface.name]
        assert f" description to {iface.peers[0].node}" in block
        assert f" ip ospf cost {iface.ospf_cost}" in block
        # OSPF must run on every tunnel: not passive, whichever way the template says it
        assert " no ip ospf passive" in block or f" no passive-interface {iface.name}" in frr
    assert " ip ospf bfd profile mesh" in frr


def test_render_ospf_throttle_timers() -> None:
    """Fast LSA/SPF timers by default; a value equal to FRR's default is left out, as FRR's running config
    leaves it out (otherwise frr-reload would see a difference on every deploy)."""
    frr = render_node(valid_plan(three_spokes_two_hubs(routing="ospf")).node("hub1"), "t")["/etc/frr/frr.conf"]
    router = frr[frr.index("router ospf") :]
    assert " timers throttle spf 0 50 1000\n" in router
    assert " timers throttle lsa all 200\n" in router
    assert " timers lsa min-arrival 100\n" in router
    assert frr.count(" ip ospf retransmit-interval 1\n") == frr.count("\ninterface ")
    frr_defaults = {
        "lsa_interval_ms": 5000,
        "lsa_arrival_ms": 1000,
        "spf_throttle_ms": [0, 50, 5000],
        "retransmit_interval": 5,
        "hello_interval": 10,
        "dead_interval": 40,
    }
    bfd = {"enabled": True, "interval_ms": 300, "multiplier": 3}
    plan = valid_plan(three_spokes_two_hubs(routing="ospf", ospf=frr_defaults, bfd=bfd))
    frr = render_node(plan.node("hub1"), "t")["/etc/frr/frr.conf"]
    for hidden in ("timers", "retransmit", "hello-interval", "transmit-interval", "detect-multiplier"):
        assert hidden not in frr, hidden
    assert " ip ospf dead-interval 40\n" in frr  # FRR 8.4 shows this one even at its default
    assert " profile mesh\n" in frr


def test_render_forwarding_as_frr_shows_it() -> None:
    """A routed node forwards; FRR's running config shows IPv4 forwarding only when it is off."""
    frr = render_node(valid_plan(three_spokes_two_hubs(routing="ospf")).node("spoke1"), "t")["/etc/frr/frr.conf"]
    assert "ip forwarding" not in frr.replace("no ipv6 forwarding", "")
    assert "\nno ipv6 forwarding\n" in frr


def test_render_without_bfd() -> None:
    plan = valid_plan(three_spokes_two_hubs(routing="ospf", bfd={"enabled": False}))
    frr = render_node(plan.node("hub1"), "t")["/etc/frr/frr.conf"]
    assert "bfd" not in frr


# --- stickiness of rendered files -----------------------------------------------------------------


def demo_with_new_spoke(routing: str) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    data = three_spokes_two_hubs(routing=routing)
    before = valid_plan(data)
    data["nodes"]["spoke4"] = node(14)
    after = valid_plan(data, before.next_state())
    old = {n: render_node(before.node(n), "t") for n in before.mesh.nodes}
    new = {n: render_node(after.node(n), "t") for n in before.mesh.nodes}
    changed = {n: ", ".join(sorted(p for p in old[n] if old[n][p] != new[n].get(p))) for n in old if old[n] != new[n]}
    return changed, old, new


def test_adding_a_spoke_in_ospf_mode_changes_only_it_and_its_hubs() -> None:
    changed, _, _ = demo_with_new_spoke("ospf")
    assert set(changed) == {"hub1", "hub2"}, changed


def test_adding_a_spoke_in_ospf_mode_leaves_other_spokes_frr_and_interfaces_alone() -> None:
    _, old, new = demo_with_new_spoke("ospf")
    for spoke in ("spoke1", "spoke2", "spoke3"):
        assert old[spoke]["/etc/frr/frr.conf"] == new[spoke]["/etc/frr/frr.conf"]
        for path in old[spoke]:
            lines_old = [ln for ln in old[spoke][path].splitlines() if not ln.startswith("AllowedIPs")]
            lines_new = [ln for ln in new[spoke][path].splitlines() if not ln.startswith("AllowedIPs")]
            assert lines_old == lines_new


def test_adding_a_spoke_in_static_mode_touches_other_spokes_only_in_the_primary_hub_route() -> None:
    # Inherent to static routing: the other spokes must learn spoke4's prefixes via the primary hub.
    changed, old, new = demo_with_new_spoke("static")
    assert set(changed) == {"hub1", "hub2", "spoke1", "spoke2", "spoke3"}
    for spoke in ("spoke1", "spoke2", "spoke3"):
        [path] = old[spoke]
        diff = [
            (a, b) for a, b in zip(old[spoke][path].splitlines(), new[spoke][path].splitlines(), strict=True) if a != b
        ]
        [(was, now)] = diff
        assert now.startswith(was + ", 10.255.0.6/32, 10.14.0.0/24")


def test_with_known_peers_drops_keyless_peers_and_empty_tunnels() -> None:
    from mesh_tasks.core.plan import with_known_peers

    state = MeshState(public_keys={n: fake_key(n) for n in ("hub1", "spoke1")})
    static = valid_plan(three_spokes_two_hubs(), state).node("spoke1")
    assert [p.node for _, p in with_known_peers(static).peers()] == ["hub1"]
    assert len(with_known_peers(static).interfaces) == 1  # wg0 stays even with no peer
    routed = valid_plan(three_spokes_two_hubs(routing="ospf"), state).node("spoke1")
    kept = with_known_peers(routed)
    assert [i.peers[0].node for i in kept.interfaces] == ["hub1"]
    assert kept.interfaces[0] == next(i for i in routed.interfaces if i.peers[0].node == "hub1")


def test_crypto_gate_is_the_configured_summaries_and_stable() -> None:
    """Routed-mode AllowedIPs: the SoT's summaries (else the /8s in use), never the list of node networks,
    so adding a node does not rewrite every tunnel."""
    plan = valid_plan(three_spokes_two_hubs(routing="ospf", summaries=["10.0.0.0/8", "172.16.0.0/12"]))
    assert plan.crypto_gate() == ("10.0.0.0/8", "172.16.0.0/12", OSPF_MULTICAST)
    default = valid_plan(three_spokes_two_hubs(routing="ospf"))
    assert default.crypto_gate() == ("10.0.0.0/8", OSPF_MULTICAST)


def test_routed_interfaces_lift_the_multicast_membership_limit() -> None:
    """ospfd joins 224.0.0.5 once per interface on one socket; Linux allows 20 by default, which silently
    cut a hub with more than 20 tunnels off from the hellos on the rest (seen at 24 nodes)."""
    routed = valid_plan(three_spokes_two_hubs(routing="ospf"))
    files = render_node(routed.node("hub1"), "t")
    wg_files = [text for path, text in files.items() if path.startswith("/etc/wireguard/")]
    assert wg_files and all("PreUp = sysctl -qw net.ipv4.igmp_max_memberships=4096" in t for t in wg_files)
    static = valid_plan(three_spokes_two_hubs())
    assert "igmp_max_memberships" not in render_node(static.node("hub1"), "t")["/etc/wireguard/wg0.conf"]
