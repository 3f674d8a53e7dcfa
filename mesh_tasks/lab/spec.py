"""What a lab is made of: a small, loader-independent description of its hosts.

The lab core takes a LabSpec, not a Mesh, so it can be built and tested without the model loader and so
synthetic labs (benchmarks) need no YAML. `spec_from_mesh` is the one bridge from the source of truth.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mesh_tasks.lab.errors import LabError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Node names become namespace names, host names and file names: keep them to hostname-like characters.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


@dataclass(frozen=True, slots=True)
class LabNode:
    """One host of the lab: a source-of-truth node as far as the lab cares."""

    name: str
    role: str = "spoke"
    nat: bool = False
    has_endpoint: bool = True
    networks: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True, slots=True)
class LabSpec:
    """Every host in source-of-truth order plus the prefixes to blackhole in the root namespace."""

    nodes: tuple[LabNode, ...]
    overlay_prefixes: tuple[IPNetwork, ...] = field(default=())

    def __post_init__(self) -> None:
        problems: list[str] = []
        seen: set[str] = set()
        for node in self.nodes:
            if not _NAME.match(node.name):
                problems.append(f"node {node.name!r}: name must match {_NAME.pattern} to name a lab host")
            if node.name in seen:
                problems.append(f"node {node.name!r}: appears twice")
            seen.add(node.name)
        if not self.nodes:
            problems.append("a lab needs at least one node")
        if problems:
            raise LabError("; ".join(problems))

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise LabError(f"no node {name!r} in this lab (nodes: {', '.join(n.name for n in self.nodes)})")


class _EndpointLike(Protocol):
    @property
    def host(self) -> str: ...


class _NodeLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def nat(self) -> bool: ...
    @property
    def endpoint(self) -> _EndpointLike | None: ...
    @property
    def networks(self) -> Sequence[IPNetwork]: ...


class MeshLike(Protocol):
    """The part of mesh_tasks.core.model.Mesh the lab reads (structural, so the lab needs no import)."""

    @property
    def nodes(self) -> Mapping[str, _NodeLike]: ...
    def overlay_prefixes(self) -> list[IPNetwork]: ...


def spec_from_mesh(mesh: MeshLike) -> LabSpec:
    """Map source-of-truth nodes to lab hosts, keeping file order (it fixes each host's addresses)."""
    nodes = tuple(
        LabNode(
            name=node.name,
            role=node.role,
            nat=node.nat,
            has_endpoint=node.endpoint is not None,
            networks=tuple(node.networks),
        )
        for node in mesh.nodes.values()
    )
    return LabSpec(nodes=nodes, overlay_prefixes=tuple(mesh.overlay_prefixes()))


def synthetic_spec(hosts: int, hubs: int = 2, nat: int = 1) -> LabSpec:
    """A hub-and-spoke lab of `hosts` nodes (hubs first, the last `nat` spokes NATed), for benchmarks/tests."""
    if hosts < 1 or hubs < 0 or nat < 0 or hubs + nat > hosts:
        raise LabError(f"cannot make {hosts} hosts with {hubs} hubs and {nat} NATed spokes")
    nodes: list[LabNode] = []
    for i in range(hosts):
        is_hub = i < hubs
        is_nat = i >= hosts - nat
        net = ipaddress.IPv4Network(f"10.{100 + i // 250}.{i % 250}.0/24")
        nodes.append(
            LabNode(
                name=f"hub{i + 1}" if is_hub else f"spoke{i + 1 - hubs}",
                role="hub" if is_hub else "spoke",
                nat=is_nat,
                has_endpoint=not is_nat,
                networks=(net,),
            )
        )
    prefixes: Iterable[IPNetwork] = ipaddress.collapse_addresses(
        [n.networks[0] for n in nodes if isinstance(n.networks[0], ipaddress.IPv4Network)]
    )
    return LabSpec(nodes=tuple(nodes), overlay_prefixes=tuple(prefixes))
