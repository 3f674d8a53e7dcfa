"""Shape rules: parse_mesh / load_mesh turn every malformed field into a Finding, all at once."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from mesh_tasks.core.findings import MeshInputError, Severity
from mesh_tasks.core.model import Endpoint, load_mesh, parse_endpoint, parse_mesh

from .meshes import dump, node, one, shape_findings, sot, valid_plan


def base() -> dict:
    return sot({"a": node(1), "b": node(2)})


# --- unknown keys at every level ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "owner", "field"),
    [
        ((), "mesh", "(top level).bogus"),
        (("mesh",), "mesh", "mesh.bogus"),
        (("mesh", "ospf"), "mesh", "mesh.ospf.bogus"),
        (("mesh", "bfd"), "mesh", "mesh.bfd.bogus"),
        (("defaults",), "mesh", "defaults.bogus"),
        (("nodes", "a"), "a", "nodes.a.bogus"),
        (("nodes", "a", "management"), "a", "nodes.a.management.bogus"),
    ],
)
def test_unknown_key_at_every_level(where: tuple[str, ...], owner: str, field: str) -> None:
    data = base()
    data["defaults"] = {"username": "root"}
    data["mesh"]["ospf"] = {"cost": 10}
    data["mesh"]["bfd"] = {"enabled": True}
    data["nodes"]["a"]["management"] = {"host": "192.0.2.1"}
    target = data
    for key in where:
        target = target[key]
    target["bogus"] = 1
    f = one(shape_findings(data), field)
    assert f.node == owner
    assert "unknown key" in f.message
    assert "allowed:" in f.message


def test_unknown_key_is_not_silently_used() -> None:
    data = base()
    data["nodes"]["a"]["netwroks"] = ["10.9.0.0/24"]  # a typo must not pass as "no networks"
    f = one(shape_findings(data), "nodes.a.netwroks")
    assert "networks" in f.message  # the allowed keys point at the right spelling


# --- duplicate node names (YAML duplicate keys) ---------------------------------------------------

DUPLICATE_NODES = """\
mesh:
  name: t
nodes:
  a:
    management: 192.0.2.1
    endpoint: 198.51.100.1
  b:
    management: 192.0.2.2
    endpoint: 198.51.100.2
  a:
    management: 192.0.2.3
    endpoint: 198.51.100.3
"""


def test_duplicate_node_name_is_an_error_naming_the_node(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(DUPLICATE_NODES)
    with pytest.raises(MeshInputError) as info:
        load_mesh(path)
    [f] = info.value.findings
    assert f.severity is Severity.ERROR
    assert "duplicate key 'a'" in f.message
    assert "line 10" in f.message  # points at the second `a:`


def test_duplicate_node_name_finding_names_node_and_field(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(DUPLICATE_NODES)
    with pytest.raises(MeshInputError) as info:
        load_mesh(path)
    [f] = info.value.findings
    assert (f.node, f.field) == ("a", "nodes.a")


def test_duplicate_keys_inside_a_node_are_errors_too(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text("nodes:\n  a:\n    management: 192.0.2.1\n    endpoint: x\n    endpoint: y\n")
    with pytest.raises(MeshInputError) as info:
        load_mesh(path)
    assert "duplicate key 'endpoint'" in info.value.findings[0].message


def test_unreadable_and_invalid_yaml_are_findings(tmp_path: Path) -> None:
    with pytest.raises(MeshInputError) as info:
        load_mesh(tmp_path / "missing.yaml")
    assert "cannot read" in info.value.findings[0].message
    bad = tmp_path / "bad.yaml"
    bad.write_text("nodes: [unclosed\n")
    with pytest.raises(MeshInputError) as info:
        load_mesh(bad)
    assert "not valid YAML" in info.value.findings[0].message


def test_load_mesh_reads_yaml_text_like_parse_mesh(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(dump(base()))
    mesh = load_mesh(path)
    assert mesh.source == path
    assert mesh == parse_mesh(base(), source=path)


def test_the_shipped_example_is_valid() -> None:
    repo = Path(__file__).resolve().parents[2]
    plan = valid_plan(yaml.safe_load((repo / "inventory" / "mesh.yaml").read_text()))
    assert plan.mesh.settings.routing == "ospf"


# --- invalid CIDRs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("10.1.0.1/24", "has host bits set"),
        ("banana", "banana"),
        ("10.1.0.0/33", "10.1.0.0/33"),
        ("2001:db8::1/64", "has host bits set"),
        (42, "CIDR string"),
    ],
)
@pytest.mark.parametrize("key", ["networks", "routes"])
def test_invalid_cidr_in_node_lists(key: str, value: object, words: str) -> None:
    data = base()
    data["nodes"]["b"][key] = ["10.2.0.0/24", value] if key == "networks" else [value]
    field = f"nodes.b.{key}[1]" if key == "networks" else f"nodes.b.{key}[0]"
    f = one(shape_findings(data), field)
    assert f.node == "b"
    assert words in f.message
    if isinstance(value, str):
        assert value in f.message


@pytest.mark.parametrize("pool", ["transit_pool", "link_pool"])
@pytest.mark.parametrize("value", ["10.255.0.1/24", "nope", "2001:db8::/64"])
def test_invalid_pools(pool: str, value: str) -> None:
    data = base()
    data["mesh"][pool] = value
    f = one(shape_findings(data), f"mesh.{pool}")
    assert f.node == "mesh"
    assert value in f.message


def test_networks_must_be_a_list() -> None:
    data = base()
    data["nodes"]["a"]["networks"] = "10.1.0.0/24"
    f = one(shape_findings(data), "nodes.a.networks")
    assert "must be a list" in f.message


def test_invalid_explicit_address() -> None:
    data = base()
    data["nodes"]["a"]["address"] = "10.255.0.300"
    f = one(shape_findings(data), "nodes.a.address")
    assert "10.255.0.300" in f.message


# --- invalid ports ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 65536, -1, "51820", True, 1.5])
@pytest.mark.parametrize(
    ("path", "owner", "field"),
    [
        (("mesh", "listen_port"), "mesh", "mesh.listen_port"),
        (("nodes", "a", "listen_port"), "a", "nodes.a.listen_port"),
        (("nodes", "a", "management", "port"), "a", "nodes.a.management.port"),
        (("defaults", "port"), "a", "nodes.a.management.port"),
    ],
)
def test_invalid_ports(path: tuple[str, ...], owner: str, field: str, value: object) -> None:
    data = base()
    data["nodes"]["a"]["management"] = {"host": "192.0.2.1"}
    data["defaults"] = {}
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    findings = shape_findings(data)
    f = one(findings, field)
    assert f.node == owner
    assert str(value) in f.message


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("198.51.100.1:70000", "70000 is out of range"),
        ("198.51.100.1:0", "0 is out of range"),
        ("198.51.100.1:abc", "invalid port 'abc'"),
        ("[2001:db8::1]:x", "invalid port 'x'"),
        ("[2001:db8::1", "unclosed"),
        ("[2001:db8::1]51820", "expected ':port'"),
        ("[not-v6]:51820", "not-v6"),
        (":51820", "missing host"),
    ],
)
def test_invalid_endpoints(endpoint: str, words: str) -> None:
    data = base()
    data["nodes"]["a"]["endpoint"] = endpoint
    f = one(shape_findings(data), "nodes.a.endpoint")
    assert f.node == "a"
    assert words in f.message


def test_endpoint_with_empty_port_is_rejected() -> None:
    with pytest.raises(ValueError, match="port"):
        parse_endpoint("198.51.100.1:")


@pytest.mark.parametrize("key", ["keepalive", "ospf_cost"])
def test_invalid_node_integers(key: str) -> None:
    data = base()
    data["nodes"]["a"][key] = "often"
    f = one(shape_findings(data), f"nodes.a.{key}")
    assert "'often'" in f.message


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("mesh", "mtu"), 100),
        (("mesh", "keepalive"), -1),
        (("mesh", "handshake_max_age"), 0),
        (("mesh", "ospf", "hello_interval"), 0),
        (("mesh", "ospf", "area"), "backbone"),
        (("mesh", "ospf", "lsa_interval_ms"), 6000),
        (("mesh", "ospf", "retransmit_interval"), 0),
        (("mesh", "ospf", "spf_throttle_ms"), [0, 50]),
        (("mesh", "ospf", "spf_throttle_ms"), [0, 2000, 1000]),
        (("mesh", "ospf", "spf_throttle_ms"), "fast"),
        (("mesh", "bfd", "multiplier"), 1),
        (("mesh", "bfd", "enabled"), "yes"),
        (("mesh", "name"), ""),
    ],
)
def test_invalid_mesh_settings(path: tuple[str, ...], value: object) -> None:
    data = base()
    target = data
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    f = one(shape_findings(data), ".".join(path))
    assert f.node == "mesh"


# --- invalid enumerations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "field", "owner"),
    [
        (("nodes", "b", "role"), "router", "nodes.b.role", "b"),
        (("mesh", "routing"), "bgp", "mesh.routing", "mesh"),
        (("mesh", "topology"), "ring", "mesh.topology", "mesh"),
        (("nodes", "b", "nat"), "yes", "nodes.b.nat", "b"),
    ],
)
def test_invalid_choices(path: tuple[str, ...], value: str, field: str, owner: str) -> None:
    data = base()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    f = one(shape_findings(data), field)
    assert f.node == owner
    assert repr(value) in f.message


# --- IPv6 endpoints --------------------------------------------------------------------------------


def test_ipv6_endpoint_without_brackets_is_an_error() -> None:
    data = base()
    data["nodes"]["a"]["endpoint"] = "2001:db8::1:51820"
    f = one(shape_findings(data), "nodes.a.endpoint")
    assert f.node == "a"
    assert "2001:db8::1:51820" in f.message
    assert "brackets" in f.message


@pytest.mark.parametrize(
    ("endpoint", "parsed", "rendered"),
    [
        ("[2001:db8::1]:51900", Endpoint("2001:db8::1", 51900), "[2001:db8::1]:51900"),
        ("[2001:db8::1]", Endpoint("2001:db8::1"), "[2001:db8::1]:51820"),
        ("vpn.example.com:51900", Endpoint("vpn.example.com", 51900), "vpn.example.com:51900"),
        ("198.51.100.1", Endpoint("198.51.100.1"), "198.51.100.1:51820"),
    ],
)
def test_valid_endpoints_parse_and_render(endpoint: str, parsed: Endpoint, rendered: str) -> None:
    assert parse_endpoint(endpoint) == parsed
    data = base()
    data["nodes"]["a"]["endpoint"] = endpoint
    plan = valid_plan(data)
    [(_, peer)] = plan.node("b").peers()
    assert peer.endpoint == rendered


# --- other shapes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [None, {}, [], "a"])
def test_nodes_must_be_a_non_empty_mapping(nodes: object) -> None:
    f = one(shape_findings({"nodes": nodes}), "nodes")
    assert f.node == "mesh"


def test_node_must_be_a_mapping_and_have_management() -> None:
    data = base()
    data["nodes"]["a"] = "hub"
    findings = shape_findings(data)
    assert "must be a mapping" in one(findings, "nodes.a").message
    assert "missing" in one(findings, "nodes.a.management").message


def test_non_string_node_name() -> None:
    data = base()
    data["nodes"][7] = node(7)
    f = one(shape_findings(data), "nodes.7")
    assert f.node == "7"


def test_management_defaults_apply() -> None:
    data = base()
    data["defaults"] = {"username": "ops", "port": 2222, "key_file": "/k"}
    data["nodes"]["b"]["management"] = {"host": "192.0.2.2", "username": "admin"}
    mesh = parse_mesh(data)
    a, b = mesh.nodes["a"].management, mesh.nodes["b"].management
    assert (a.host, a.port, a.username, a.key_file) == ("192.0.2.1", 2222, "ops", "/k")
    assert (b.username, b.port) == ("admin", 2222)


def test_all_shape_findings_come_at_once() -> None:
    data = base()
    data["mesh"]["routing"] = "rip"  # 1: bad choice
    data["nodes"]["a"]["networks"] = ["10.1.0.1/24"]  # 2: host bits
    data["nodes"]["b"]["listen_port"] = 99999  # 3: bad port
    findings = shape_findings(data)
    assert sorted(f.field for f in findings) == ["mesh.routing", "nodes.a.networks[0]", "nodes.b.listen_port"]
    assert all(f.severity is Severity.ERROR for f in findings)


def test_all_shape_findings_are_in_the_exception_text() -> None:
    data = base()
    data["nodes"]["a"]["bogus"] = 1
    data["nodes"]["b"]["networks"] = ["x"]
    with pytest.raises(MeshInputError) as info:
        parse_mesh(data)
    assert "nodes.a.bogus" in str(info.value)
    assert "nodes.b.networks[0]" in str(info.value)


def test_parsed_values_are_typed() -> None:
    data = base()
    data["nodes"]["a"]["routes"] = ["2001:db8::/48"]
    mesh = parse_mesh(data)
    assert mesh.nodes["a"].networks == (ipaddress.ip_network("10.1.0.0/24"),)
    assert mesh.nodes["a"].routes == (ipaddress.ip_network("2001:db8::/48"),)
    assert mesh.nodes["a"].role == "spoke"
    assert mesh.settings.listen_port == 51820


@pytest.mark.parametrize(
    ("where", "name"),
    [("node", "b\nAllowedIPs = 0.0.0.0/0"), ("node", "spoke 1"), ("mesh", "demo\nPostUp = rm -rf /")],
)
def test_names_that_would_break_rendered_files_are_rejected(where: str, name: str) -> None:
    data = base()
    if where == "node":
        data["nodes"][name] = data["nodes"].pop("b")
    else:
        data["mesh"]["name"] = name
    findings = shape_findings(data)
    assert any(repr(name) in f.message or name in f.field for f in findings)
