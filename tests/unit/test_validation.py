"""Semantic rules (validation.validate over a MeshPlan): one test per rule, each naming node, field, prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesh_tasks.core.findings import MeshInputError, Severity, has_errors
from mesh_tasks.core.load import build_plan
from mesh_tasks.core.state import MeshState, load_state, save_state, state_path

from .meshes import at, build, dump, errors, fake_key, node, one, sot, three_spokes_two_hubs


def pair(**kw) -> dict:
    return sot({"a": node(1), "b": node(2)}, **kw)


def test_a_clean_mesh_has_no_findings() -> None:
    _, findings = build(three_spokes_two_hubs(routing="ospf"))
    assert findings == []


# --- addresses --------------------------------------------------------------------------------------


def test_address_outside_transit_pool() -> None:
    data = pair()
    data["nodes"]["a"]["address"] = "10.99.0.1"
    f = one(build(data)[1], "nodes.a.address")
    assert f.node == "a"
    assert "10.99.0.1" in f.message
    assert "10.255.0.0/24" in f.message


def test_duplicate_explicit_addresses() -> None:
    data = pair()
    data["nodes"]["a"]["address"] = "10.255.0.7"
    data["nodes"]["b"]["address"] = "10.255.0.7"
    f = one(build(data)[1], "nodes.b.address")
    assert f.node == "b"
    assert "10.255.0.7" in f.message
    assert "a" in f.message.split("address of")[-1]


def test_transit_pool_exhaustion() -> None:
    data = sot({n: node(i) for i, n in enumerate(["a", "b", "c"], 1)}, transit_pool="10.255.0.0/31")
    f = one(build(data)[1], "mesh.transit_pool")
    assert f.node == "c"
    assert "exhausted" in f.message


# --- overlapping networks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net_a", "net_b", "words"),
    [("10.1.0.0/24", "10.1.0.0/24", "is the same prefix as"), ("10.1.0.0/16", "10.1.7.0/24", "overlaps")],
)
def test_node_networks_overlapping_each_other(net_a: str, net_b: str, words: str) -> None:
    data = pair()
    data["nodes"]["a"]["networks"] = [net_a]
    data["nodes"]["b"]["networks"] = [net_b]
    f = one(build(data)[1], "nodes.b.networks[0]")
    assert f.node == "b"
    assert words in f.message
    assert net_a in f.message and net_b in f.message
    assert "nodes.a.networks[0]" in f.message


def test_ipv6_networks_overlap_too() -> None:
    data = pair()
    data["nodes"]["a"]["networks"] = ["2001:db8::/32"]
    data["nodes"]["b"]["networks"] = ["2001:db8:5::/48"]
    f = one(build(data)[1], "nodes.b.networks[0]")
    assert "2001:db8::/32" in f.message


def test_networks_of_one_node_overlapping() -> None:
    data = pair()
    data["nodes"]["a"]["networks"] = ["10.1.0.0/24", "10.1.0.128/25"]
    f = one(build(data)[1], "nodes.a.networks[1]")
    assert "10.1.0.128/25" in f.message


@pytest.mark.parametrize("net", ["10.255.0.0/25", "10.0.0.0/8"])
def test_network_overlapping_the_transit_pool(net: str) -> None:
    data = pair()
    data["nodes"]["b"]["networks"] = [net]
    f = one(build(data)[1], "nodes.b.networks[0]")
    assert f.node == "b"
    assert net in f.message
    assert "10.255.0.0/24" in f.message
    assert "mesh.transit_pool" in f.message


def test_network_overlapping_the_link_pool_only_matters_in_ospf_mode() -> None:
    data = pair(routing="ospf")
    data["nodes"]["b"]["networks"] = ["10.254.3.0/24"]
    f = one(build(data)[1], "nodes.b.networks[0]")
    assert "10.254.0.0/16" in f.message and "mesh.link_pool" in f.message
    data["mesh"]["routing"] = "static"
    assert build(data)[1] == []


def test_link_pool_overlapping_transit_pool_in_ospf_mode() -> None:
    data = pair(routing="ospf", link_pool="10.255.0.0/16")
    findings = errors(build(data)[1])
    assert len(findings) == 1
    assert findings[0].node == "mesh"
    assert "10.255.0.0/24" in findings[0].message and "10.255.0.0/16" in findings[0].message


# --- the overlap trap and longest-prefix ambiguity (static mode) ---------------------------------


def test_overlap_trap_two_hubs_same_summary() -> None:
    data = three_spokes_two_hubs()
    data["nodes"]["hub1"]["routes"] = ["172.16.0.0/12"]
    data["nodes"]["hub2"]["routes"] = ["172.16.0.0/12"]
    f = one(build(data)[1], "nodes.hub2.routes")
    assert f.node == "hub2"
    assert "overlap trap" in f.message
    assert "172.16.0.0/12" in f.message
    assert "hub1" in f.message and "hub2" in f.message
    assert "ospf" in f.message
    assert "spoke1" in f.message  # where it bites: the spokes' wg0


def test_the_same_summary_is_fine_in_ospf_mode_as_networks_of_one_node() -> None:
    data = three_spokes_two_hubs(routing="ospf")
    data["nodes"]["hub1"]["networks"].append("172.16.0.0/12")
    assert build(data)[1] == []


def test_longest_prefix_ambiguity_warns_naming_both() -> None:
    data = sot({"a": node(1), "b": node(2), "c": node(3)})
    data["nodes"]["a"]["routes"] = ["10.0.0.0/8"]  # contains b's 10.2.0.0/24 (and c's 10.3.0.0/24)
    data["mesh"]["transit_pool"] = "192.168.255.0/24"
    _, findings = build(data)
    assert not has_errors(findings)
    warned = [f for f in at(findings, "nodes.a") if "10.2.0.0/24" in f.message]
    assert len(warned) == 1
    f = warned[0]
    assert f.severity is Severity.WARNING
    assert f.node == "a"
    assert "longest-prefix ambiguity" in f.message
    assert "10.0.0.0/8" in f.message and "b" in f.message
    assert "wg0 of c" in f.message


def test_nested_prefixes_through_the_same_peer_are_not_ambiguous() -> None:
    # hub-and-spoke: spoke2 reaches hub1's summary and spoke1's network through hub1 alike
    data = sot({"hub1": node(1, "hub"), "spoke1": node(11), "spoke2": node(12)}, topology="hub-and-spoke")
    data["nodes"]["hub1"]["routes"] = ["10.0.0.0/8"]
    data["mesh"]["transit_pool"] = "192.168.255.0/24"
    assert build(data)[1] == []


# --- endpoints, NAT, hubs ---------------------------------------------------------------------------


def test_tunnel_where_neither_side_has_an_endpoint() -> None:
    data = sot({"a": node(1), "b": node(2, endpoint=None), "c": node(3, endpoint=None)})
    f = one(build(data)[1], "nodes.b.endpoint")
    assert f.node == "b"
    assert "neither side has an endpoint" in f.message
    assert "b and c" in f.message


def test_a_shortcut_between_two_endpointless_spokes_is_rejected() -> None:
    data = three_spokes_two_hubs(links=[["spoke3", "spoke4"]])
    data["nodes"]["spoke4"] = node(14, endpoint=None, nat=True)
    f = one(build(data)[1], "nodes.spoke3.endpoint")
    assert "spoke4" in f.message


@pytest.mark.parametrize("where", ["node", "mesh"])
def test_nat_node_with_keepalive_zero(where: str) -> None:
    data = pair()
    data["nodes"]["b"]["nat"] = True
    if where == "node":
        data["nodes"]["b"]["keepalive"] = 0
    else:
        data["mesh"]["keepalive"] = 0
    f = one(build(data)[1], "nodes.b.keepalive")
    assert f.node == "b"
    assert "NAT" in f.message and "keepalive 0" in f.message


def test_hub_and_spoke_without_a_hub() -> None:
    data = sot({"a": node(1), "b": node(2)}, topology="hub-and-spoke")
    f = one(build(data)[1], "mesh.topology")
    assert f.node == "mesh"
    assert "role: hub" in f.message


def test_hub_and_spoke_without_a_hub_endpoint() -> None:
    data = sot(
        {"hub1": node(1, "hub", endpoint=None), "hub2": node(2, "hub", endpoint=None), "s": node(3)},
        topology="hub-and-spoke",
    )
    findings = at(build(data)[1], "nodes.hub1.endpoint")
    [f] = [f for f in findings if "no hub has a reachable endpoint" in f.message]
    assert f.node == "hub1"
    assert f.severity is Severity.ERROR
    assert "hub1, hub2" in f.message
    # the hub1<->hub2 tunnel has no endpoint either, and is reported on its own
    assert any("hub1 and hub2" in f.message for f in findings)


def test_static_mode_with_two_hubs_warns_there_is_no_failover() -> None:
    f = one(build(three_spokes_two_hubs())[1], "mesh.routing", Severity.WARNING)
    assert f.node == "hub1"
    assert "ospf" in f.message


@pytest.mark.parametrize(
    ("ep_a", "ep_b", "shown"),
    [
        ("198.51.100.9", "198.51.100.9", "198.51.100.9:51820"),
        ("198.51.100.9", "198.51.100.9:51820", "198.51.100.9:51820"),
        ("[2001:db8::9]:4000", "[2001:db8::9]:4000", "2001:db8::9:4000"),
    ],
)
def test_duplicate_endpoint_host_port(ep_a: str, ep_b: str, shown: str) -> None:
    data = pair()
    data["nodes"]["a"]["endpoint"] = ep_a
    data["nodes"]["b"]["endpoint"] = ep_b
    f = one(build(data)[1], "nodes.b.endpoint")
    assert f.node == "b"
    assert shown in f.message
    assert "a's" in f.message


def test_same_endpoint_host_on_different_ports_is_fine() -> None:
    data = pair()
    data["nodes"]["a"]["endpoint"] = "198.51.100.9:51820"
    data["nodes"]["b"]["endpoint"] = "198.51.100.9"
    data["nodes"]["b"]["listen_port"] = 51821
    assert build(data)[1] == []


def test_duplicate_management_target() -> None:
    data = pair()
    data["nodes"]["b"]["management"] = {"host": "192.0.2.1", "port": 22}
    f = one(build(data)[1], "nodes.b.management")
    assert f.node == "b"
    assert "192.0.2.1:22" in f.message and "a's" in f.message
    data["nodes"]["b"]["management"]["port"] = 2222
    assert build(data)[1] == []


# --- ospf mode --------------------------------------------------------------------------------------


def test_ospf_mode_rejects_ipv6_networks() -> None:
    data = pair(routing="ospf")
    data["nodes"]["a"]["networks"] = ["10.1.0.0/24", "2001:db8:1::/48"]
    f = one(build(data)[1], "nodes.a.networks[1]")
    assert f.node == "a"
    assert "2001:db8:1::/48" in f.message and "IPv4" in f.message


def test_ospf_mode_rejects_routes() -> None:
    data = pair(routing="ospf")
    data["nodes"]["a"]["routes"] = ["172.16.0.0/12"]
    f = one(build(data)[1], "nodes.a.routes")
    assert f.node == "a"
    assert "networks" in f.message


def test_ospf_mode_rejects_endpoint_port() -> None:
    data = pair(routing="ospf")
    data["nodes"]["a"]["endpoint"] = "198.51.100.1:51820"
    f = one(build(data)[1], "nodes.a.endpoint")
    assert f.node == "a"
    assert "listen_port + tunnel id" in f.message


def test_ospf_mode_rejects_listen_port() -> None:
    data = pair(routing="ospf")
    data["nodes"]["b"]["listen_port"] = 51999
    f = one(build(data)[1], "nodes.b.listen_port")
    assert f.node == "b"


@pytest.mark.parametrize(("hello", "dead"), [(4, 4), (10, 4)])
def test_dead_interval_must_exceed_hello(hello: int, dead: int) -> None:
    data = pair(routing="ospf", ospf={"hello_interval": hello, "dead_interval": dead})
    f = one(build(data)[1], "mesh.ospf.dead_interval")
    assert f.node == "mesh"
    assert f"dead_interval {dead}" in f.message and f"hello_interval {hello}" in f.message
    data["mesh"]["routing"] = "static"  # timers are unused in static mode
    assert build(data)[1] == []


def test_lsa_arrival_must_not_exceed_lsa_interval() -> None:
    data = pair(routing="ospf", ospf={"lsa_interval_ms": 100, "lsa_arrival_ms": 500})
    f = one(build(data)[1], "mesh.ospf.lsa_arrival_ms")
    assert f.node == "mesh" and "lsa_arrival_ms 500" in f.message and "lsa_interval_ms 100" in f.message
    data["mesh"]["ospf"]["lsa_arrival_ms"] = 100
    assert build(data)[1] == []


def test_same_endpoint_host_is_fine_in_ospf_mode() -> None:
    # ports are per tunnel in the routed mode, so two nodes may share a public address
    data = pair(routing="ospf")
    data["nodes"]["b"]["endpoint"] = "198.51.100.1"
    assert build(data)[1] == []


def test_link_pool_exhaustion() -> None:
    data = sot({n: node(i) for i, n in enumerate("abc", 1)}, routing="ospf", link_pool="10.254.0.0/30")
    plan, findings = build(data)
    f = one(findings, "mesh.link_pool")
    assert f.node == "mesh"
    assert "10.254.0.0/30" in f.message and "b<->c" in f.message and "2 tunnels" in f.message
    assert len(plan.allocations.tunnel_ids) == 2


def test_ports_exhaust_the_tunnel_ids_too() -> None:
    data = sot({n: node(i) for i, n in enumerate("abc", 1)}, routing="ospf", listen_port=65534)
    f = one(build(data)[1], "mesh.link_pool")
    assert "ports from 65534" in f.message


# --- links ------------------------------------------------------------------------------------------


def test_link_naming_an_unknown_node() -> None:
    data = three_spokes_two_hubs(links=[["spoke1", "spoke9"]])
    f = one(build(data)[1], "links[0]")
    assert f.node == "spoke9"
    assert "spoke9" in f.message and "unknown" in f.message


def test_self_link() -> None:
    data = three_spokes_two_hubs(links=[["spoke1", "spoke2"], ["spoke2", "spoke2"]])
    f = one(build(data)[1], "links[1]")
    assert f.node == "spoke2"
    assert "itself" in f.message


def test_redundant_links_warn() -> None:
    data = three_spokes_two_hubs(links=[["spoke1", "spoke2"], ["spoke2", "spoke1"], ["spoke1", "hub1"]])
    findings = build(data)[1]
    assert at(findings, "links[0]") == []
    one(findings, "links[1]", Severity.WARNING)
    one(findings, "links[2]", Severity.WARNING)


# --- public keys from the state file ----------------------------------------------------------------


def test_invalid_public_key_in_state_file(tmp_path: Path) -> None:
    source = tmp_path / "mesh.yaml"
    source.write_text(dump(pair()))
    save_state(state_path(source), MeshState(public_keys={"a": fake_key("a"), "b": "not-a-key"}))
    plan, findings = build_plan(source)
    f = one(findings, "state.public_keys.b")
    assert f.node == "b"
    assert "44 base64" in f.message
    assert plan.node("a").interfaces[0].peers[0].public_key == "not-a-key"  # planned, but reported


@pytest.mark.parametrize(
    "key",
    [
        fake_key("x")[:-2] + "==",  # 44 characters but 31 bytes
        "A" * 43 + "!",
        fake_key("x")[:-1],
    ],
)
def test_malformed_public_keys(key: str) -> None:
    _, findings = build(pair(), MeshState(public_keys={"a": key}))
    one(findings, "state.public_keys.a")


def test_two_nodes_with_one_public_key() -> None:
    key = fake_key("shared")
    f = one(build(pair(), MeshState(public_keys={"a": key, "b": key}))[1], "state.public_keys.b")
    assert "same public key as a" in f.message


def test_keys_of_removed_nodes_are_ignored() -> None:
    assert build(pair(), MeshState(public_keys={"gone": "junk"}))[1] == []


def test_state_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "mesh.state.json"
    state = MeshState(public_keys={"a": fake_key("a")}, addresses={"a": "10.255.0.1"}, tunnels={"a~b": 3})
    save_state(path, state)
    assert json.loads(path.read_text())["version"] == 1
    assert load_state(path) == state
    assert load_state(tmp_path / "none.json") == MeshState()


# --- all at once ------------------------------------------------------------------------------------


def test_all_semantic_findings_come_at_once() -> None:
    data = three_spokes_two_hubs(routing="ospf", links=[["spoke1", "ghost"]])
    data["nodes"]["spoke1"]["networks"] = ["10.12.0.0/24"]  # same as spoke2's
    data["nodes"]["spoke3"]["keepalive"] = 0  # NATed
    findings = errors(build(data)[1])
    assert sorted(f.field for f in findings) == ["links[0]", "nodes.spoke2.networks[0]", "nodes.spoke3.keepalive"]


def test_corrupt_state_file_is_a_finding(tmp_path: Path) -> None:
    source = tmp_path / "mesh.yaml"
    source.write_text(dump(pair()))
    state_path(source).write_text("{\n")
    with pytest.raises(MeshInputError) as info:
        build_plan(source)
    assert "mesh.state.json" in info.value.findings[0].field + info.value.findings[0].message


def test_non_string_public_key_is_a_finding() -> None:
    f = one(build(pair(), MeshState(public_keys={"a": 12345}))[1], "state.public_keys.a")  # type: ignore[dict-item]
    assert f.node == "a"
