"""The source of truth as typed, validated values.

`load_mesh` reads the human-edited YAML file; every shape problem (unknown key, bad CIDR, bad port,
IPv6 endpoint without brackets, ...) becomes a Finding naming the node and field, and all of them are
raised together in one MeshInputError. Semantic rules that need the whole mesh live in validation.py.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from mesh_tasks.core.findings import Finding, MeshInputError, error

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Routing = Literal["static", "ospf"]
Topology = Literal["full-mesh", "hub-and-spoke"]
Role = Literal["hub", "spoke"]

T = TypeVar("T")
S = TypeVar("S", "OspfSettings", "BfdSettings")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where peers send handshakes: a host (name or address) and, in static mode, a public port."""

    host: str
    port: int | None = None

    def with_port(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port or port}"


@dataclass(frozen=True, slots=True)
class Management:
    """How the controller reaches the node over SSH."""

    host: str
    port: int = 22
    username: str = "root"
    key_file: str | None = None
    known_hosts: str | None = None


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    role: Role
    management: Management
    endpoint: Endpoint | None
    nat: bool
    networks: tuple[IPNetwork, ...]
    routes: tuple[IPNetwork, ...] = ()
    address: ipaddress.IPv4Address | None = None
    listen_port: int | None = None
    keepalive: int | None = None
    ospf_cost: int | None = None


@dataclass(frozen=True, slots=True)
class OspfSettings:
    area: str = "0.0.0.0"
    hello_interval: int = 1
    dead_interval: int = 4
    cost: int = 10
    # How fast a change spreads. FRR's defaults (RFC 2328's 5 s between originations of an LSA and 5 s
    # retransmit; SPF hold up to 5 s) made a 24-node bring-up take three 5 s rounds; a mesh of tens to
    # hundreds of routers runs SPF in well under a millisecond, so it can afford to recompute at once.
    retransmit_interval: int = 1  # s before an unacknowledged LSA is sent again (FRR: 5); WireGuard RTTs are ms
    lsa_interval_ms: int = 200  # least time between two originations of the same LSA
    lsa_arrival_ms: int = 100  # a copy of an LSA arriving sooner than this after the last is dropped
    spf_throttle_ms: tuple[int, int, int] = (0, 50, 1000)  # first delay, hold, longest hold


@dataclass(frozen=True, slots=True)
class BfdSettings:
    enabled: bool = True
    interval_ms: int = 50
    multiplier: int = 3


@dataclass(frozen=True, slots=True)
class MeshSettings:
    name: str = "mesh"
    routing: Routing = "static"
    topology: Topology = "full-mesh"
    transit_pool: ipaddress.IPv4Network = field(default=ipaddress.IPv4Network("10.255.0.0/24"))
    link_pool: ipaddress.IPv4Network = field(default=ipaddress.IPv4Network("10.254.0.0/16"))
    listen_port: int = 51820
    mtu: int = 1420
    keepalive: int = 25
    handshake_max_age: int = 180
    summaries: tuple[IPNetwork, ...] = ()  # routed mode crypto gate; default: the /8s the mesh uses
    ospf: OspfSettings = field(default_factory=OspfSettings)
    bfd: BfdSettings = field(default_factory=BfdSettings)


@dataclass(frozen=True, slots=True)
class Mesh:
    settings: MeshSettings
    nodes: dict[str, Node]
    links: tuple[tuple[str, str], ...] = ()
    source: Path | None = None

    def overlay_prefixes(self) -> list[IPNetwork]:
        """Every prefix that lives only inside the mesh (blackholed outside it, e.g. by the lab)."""
        prefixes: list[IPNetwork] = [self.settings.transit_pool]
        if self.settings.routing == "ospf":
            prefixes.append(self.settings.link_pool)
        for node in self.nodes.values():
            prefixes.extend(node.networks)
            prefixes.extend(node.routes)
        v4 = [p for p in prefixes if isinstance(p, ipaddress.IPv4Network)]
        v6 = [p for p in prefixes if isinstance(p, ipaddress.IPv6Network)]
        return [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]

    def hubs(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == "hub"]


class _Reader:
    """Reads untrusted YAML data, recording a Finding per problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []

    def fail(self, node: str, path: str, message: str) -> None:
        self.findings.append(error(node, path, message))

    def mapping(self, value: Any, node: str, path: str, allowed: Iterable[str]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(node, path, f"must be a mapping, got {type(value).__name__}")
            return {}
        allowed_set = set(allowed)
        for key in value:
            if key not in allowed_set:
                self.fail(node, f"{path}.{key}", f"unknown key (allowed: {', '.join(sorted(allowed_set))})")
        return {k: v for k, v in value.items() if k in allowed_set}

    def convert(self, value: Any, node: str, path: str, parse: Callable[[Any], T], default: T) -> T:
        try:
            return parse(value)
        except (ValueError, TypeError) as exc:
            self.fail(node, path, str(exc))
            return default


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be an integer, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{value} is out of range {low}..{high}")
        return value

    return parse


_port = _int_in(1, 65535)


def _spf_throttle(value: Any) -> tuple[int, int, int]:
    """[delay, hold, longest hold] in ms, as FRR's `timers throttle spf` takes them."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"must be [delay, hold, longest hold] in ms, got {value!r}")
    delay, hold, longest = (_int_in(0, 600000)(v) for v in value)
    if not delay <= longest or not hold <= longest:
        raise ValueError(f"delay and hold must not exceed the longest hold, got {value!r}")
    return delay, hold, longest


def _choice(*choices: str) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, got {value!r}")
    return value


def _network(value: Any) -> IPNetwork:
    if not isinstance(value, str):
        raise TypeError(f"must be a CIDR string, got {value!r}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"invalid CIDR {value!r}: {exc}") from None


def _network4(value: Any) -> ipaddress.IPv4Network:
    net = _network(value)
    if not isinstance(net, ipaddress.IPv4Network):
        raise ValueError(f"must be an IPv4 CIDR, got {value!r}")
    return net


def _address4(value: Any) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"invalid IPv4 address {value!r}") from None


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"must be a non-empty string, got {value!r}")
    return value


def _safe_name(value: Any) -> str:
    """Names land in hostnames, FRR and wg-quick lines: letters, digits, '.', '_', '-' only."""
    name = _name(value)
    if not _SAFE_NAME.fullmatch(name):
        raise ValueError(f"{name!r}: use letters, digits, '.', '_' and '-' (start with a letter or digit)")
    return name


def parse_endpoint(value: Any) -> Endpoint:
    """Parse `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address with a port is ambiguous."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"must be 'host' or 'host:port', got {value!r}")
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            raise ValueError(f"unclosed '[' in {value!r}")
        host, rest = value[1:close], value[close + 1 :]
        ipaddress.IPv6Address(host)  # raises ValueError with the address in the message
        if not rest:
            return Endpoint(host)
        if not rest.startswith(":"):
            raise ValueError(f"expected ':port' after ']' in {value!r}")
        return Endpoint(host, _port(_digits(rest[1:], value)))
    if value.count(":") > 1:
        raise ValueError(f"IPv6 endpoint {value!r} must be written with brackets: '[address]:port'")
    host, colon, port = value.partition(":")
    if not host:
        raise ValueError(f"missing host in {value!r}")
    return Endpoint(host, _port(_digits(port, value)) if colon else None)


def _digits(text: str, whole: str) -> int:
    if not text.isdigit():
        raise ValueError(f"invalid port {text!r} in {whole!r}")
    return int(text)


MESH_KEYS = [
    "name",
    "routing",
    "topology",
    "transit_pool",
    "link_pool",
    "listen_port",
    "mtu",
    "keepalive",
    "handshake_max_age",
    "summaries",
    "ospf",
    "bfd",
]
NODE_KEYS = [
    "role",
    "management",
    "endpoint",
    "nat",
    "networks",
    "routes",
    "address",
    "listen_port",
    "keepalive",
    "ospf_cost",
]
MANAGEMENT_KEYS = ["host", "port", "username", "key_file", "known_hosts"]


OSPF_PARSERS: dict[str, Callable[[Any], Any]] = {
    "area": lambda v: str(_address4(v)),
    "hello_interval": _int_in(1, 65535),
    "dead_interval": _int_in(1, 65535),
    "cost": _int_in(1, 65535),
    "retransmit_interval": _int_in(1, 65535),
    "lsa_interval_ms": _int_in(0, 5000),
    "lsa_arrival_ms": _int_in(0, 5000),
    "spf_throttle_ms": _spf_throttle,
}
BFD_PARSERS: dict[str, Callable[[Any], Any]] = {
    "enabled": _bool,
    "interval_ms": _int_in(10, 60000),
    "multiplier": _int_in(2, 255),
}


def _read_section(r: _Reader, raw: Any, path: str, defaults: S, parsers: dict[str, Callable[[Any], Any]]) -> S:
    """A settings block: only known keys, each parsed; a bad value is a finding and keeps the default."""
    given = r.mapping(raw, "mesh", path, tuple(parsers))
    return replace(
        defaults,
        **{
            key: r.convert(value, "mesh", f"{path}.{key}", parsers[key], getattr(defaults, key))
            for key, value in given.items()
        },
    )


def _read_settings(r: _Reader, raw: Any) -> MeshSettings:
    data = r.mapping(raw, "mesh", "mesh", MESH_KEYS)
    d = MeshSettings()
    ospf = _read_section(r, data.get("ospf"), "mesh.ospf", OspfSettings(), OSPF_PARSERS)
    bfd = _read_section(r, data.get("bfd"), "mesh.bfd", BfdSettings(), BFD_PARSERS)
    return MeshSettings(
        name=r.convert(data.get("name", d.name), "mesh", "mesh.name", _safe_name, d.name),
        routing=r.convert(data.get("routing", d.routing), "mesh", "mesh.routing", _choice("static", "ospf"), d.routing),
        topology=r.convert(
            data.get("topology", d.topology), "mesh", "mesh.topology", _choice("full-mesh", "hub-and-spoke"), d.topology
        ),
        transit_pool=r.convert(
            data.get("transit_pool", str(d.transit_pool)), "mesh", "mesh.transit_pool", _network4, d.transit_pool
        ),
        link_pool=r.convert(data.get("link_pool", str(d.link_pool)), "mesh", "mesh.link_pool", _network4, d.link_pool),
        listen_port=r.convert(data.get("listen_port", d.listen_port), "mesh", "mesh.listen_port", _port, d.listen_port),
        mtu=r.convert(data.get("mtu", d.mtu), "mesh", "mesh.mtu", _int_in(1280, 9000), d.mtu),
        keepalive=r.convert(
            data.get("keepalive", d.keepalive), "mesh", "mesh.keepalive", _int_in(0, 65535), d.keepalive
        ),
        handshake_max_age=r.convert(
            data.get("handshake_max_age", d.handshake_max_age),
            "mesh",
            "mesh.handshake_max_age",
            _int_in(1, 86400),
            d.handshake_max_age,
        ),
        summaries=_read_list(r, "mesh", "mesh.summaries", data.get("summaries"), _network),
        ospf=ospf,
        bfd=bfd,
    )


def _read_management(r: _Reader, name: str, raw: Any, defaults: dict[str, Any]) -> Management:
    path = f"nodes.{name}.management"
    if isinstance(raw, str):
        raw = {"host": raw}
    if raw is None:
        r.fail(name, path, "missing: the SSH address of the node (host or {host, port, username})")
        return Management(host="")
    data = {**defaults, **r.mapping(raw, name, path, MANAGEMENT_KEYS)}
    return Management(
        host=r.convert(data.get("host"), name, f"{path}.host", _name, ""),
        port=r.convert(data.get("port", 22), name, f"{path}.port", _port, 22),
        username=r.convert(data.get("username", "root"), name, f"{path}.username", _name, "root"),
        key_file=data.get("key_file"),
        known_hosts=data.get("known_hosts"),
    )


def _read_list(r: _Reader, name: str, path: str, raw: Any, parse: Callable[[Any], T]) -> tuple[T, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.fail(name, path, f"must be a list, got {type(raw).__name__}")
        return ()
    out: list[T] = []
    for i, item in enumerate(raw):
        try:
            out.append(parse(item))
        except (ValueError, TypeError) as exc:
            r.fail(name, f"{path}[{i}]", str(exc))
    return tuple(out)


def _read_node(r: _Reader, name: str, raw: Any, mgmt_defaults: dict[str, Any]) -> Node:
    path = f"nodes.{name}"
    data = r.mapping(raw, name, path, NODE_KEYS)
    endpoint_raw = data.get("endpoint")

    def optional(key: str, parse: Callable[[Any], T]) -> T | None:
        return None if data.get(key) is None else r.convert(data[key], name, f"{path}.{key}", parse, None)

    return Node(
        name=name,
        role=r.convert(data.get("role", "spoke"), name, f"{path}.role", _choice("hub", "spoke"), "spoke"),
        management=_read_management(r, name, data.get("management"), mgmt_defaults),
        endpoint=None
        if endpoint_raw is None
        else r.convert(endpoint_raw, name, f"{path}.endpoint", parse_endpoint, None),
        nat=r.convert(data.get("nat", False), name, f"{path}.nat", _bool, False),
        networks=_read_list(r, name, f"{path}.networks", data.get("networks"), _network),
        routes=_read_list(r, name, f"{path}.routes", data.get("routes"), _network),
        address=optional("address", _address4),
        listen_port=optional("listen_port", _port),
        keepalive=optional("keepalive", _int_in(0, 65535)),
        ospf_cost=optional("ospf_cost", _int_in(1, 65535)),
    )


def _read_links(r: _Reader, raw: Any) -> tuple[tuple[str, str], ...]:
    def link(value: Any) -> tuple[str, str]:
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
            raise ValueError(f"a link is a pair of node names like [spoke1, spoke2], got {value!r}")
        return (value[0], value[1])

    return _read_list(r, "mesh", "links", raw, link)


def parse_mesh(data: Any, source: Path | None = None) -> Mesh:
    """Turn already-loaded YAML data into a Mesh, or raise MeshInputError with every shape finding."""
    r = _Reader()
    top = r.mapping(data, "mesh", "(top level)", ("mesh", "defaults", "nodes", "links"))
    settings = _read_settings(r, top.get("mesh"))
    mgmt_defaults = r.mapping(top.get("defaults"), "mesh", "defaults", ("username", "port", "key_file", "known_hosts"))
    nodes_raw = top.get("nodes")
    nodes: dict[str, Node] = {}
    if not isinstance(nodes_raw, dict) or not nodes_raw:
        r.fail("mesh", "nodes", "must be a mapping of node name -> node with at least one node")
    else:
        for name, raw in nodes_raw.items():
            try:
                _safe_name(name)
            except (TypeError, ValueError) as exc:
                r.fail(str(name), f"nodes.{name}", f"invalid node name: {exc}")
                continue
            nodes[name] = _read_node(r, name, raw, mgmt_defaults)
    links = _read_links(r, top.get("links"))
    if r.findings:
        raise MeshInputError(r.findings)
    return Mesh(settings=settings, nodes=nodes, links=links, source=source)


_Loader = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader


def _duplicate_keys(node: yaml.Node, path: str) -> list[Finding]:
    """YAML silently keeps the last of two equal keys (two nodes of one name): report each, with its line."""
    found: list[Finding] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value in node.value:
            key = str(key_node.value)
            field = f"{path}.{key}" if path else key
            if key in seen:
                owner = key if path == "nodes" else "mesh"
                found.append(
                    error(
                        owner,
                        field,
                        f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (each name may appear once)",
                    )
                )
            seen.add(key)
            found.extend(_duplicate_keys(value, field))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, f"{path}[{i}]"))
    return found


def load_yaml(path: Path) -> Any:
    try:
        with path.open() as fh:
            loader = _Loader(fh)
            try:
                node = loader.get_single_node()
                if node is None:
                    return None
                duplicates = _duplicate_keys(node, "")
                if duplicates:
                    raise MeshInputError(duplicates)
                return loader.construct_document(node)
            finally:
                loader.dispose()
    except OSError as exc:
        raise MeshInputError([error("mesh", str(path), f"cannot read: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise MeshInputError([error("mesh", str(path), f"not valid YAML: {exc}")]) from None


def load_mesh(path: str | Path) -> Mesh:
    path = Path(path)
    return parse_mesh(load_yaml(path), source=path)


def apply_overlay(mesh: Mesh, overlay: dict[str, Any]) -> Mesh:
    """Point a mesh at other hosts (the lab's overlay.yaml) without editing the source of truth.

    The overlay replaces management targets and endpoint hosts; topology, networks and roles stay.
    """
    ssh = overlay.get("ssh") or {}
    nodes_overlay = overlay.get("nodes") or {}
    unknown = sorted(set(nodes_overlay) - set(mesh.nodes))
    if unknown:
        raise MeshInputError([error(n, f"overlay.nodes.{n}", "not a node of the source of truth") for n in unknown])
    nodes: dict[str, Node] = {}
    for name, node in mesh.nodes.items():
        over = nodes_overlay.get(name) or {}
        mgmt = over.get("management") or {}
        management = replace(
            node.management,
            host=mgmt.get("host", node.management.host),
            port=mgmt.get("port", node.management.port),
            username=ssh.get("username", node.management.username),
            key_file=ssh.get("key_file", node.management.key_file),
            known_hosts=ssh.get("known_hosts", node.management.known_hosts),
        )
        endpoint = node.endpoint
        if endpoint is not None and over.get("endpoint_host"):
            endpoint = replace(endpoint, host=over["endpoint_host"])
        nodes[name] = replace(node, management=management, endpoint=endpoint)
    return replace(mesh, nodes=nodes)
