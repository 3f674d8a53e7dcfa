"""Small builders for source-of-truth dicts, plus helpers that run the pure pipeline on them.

A SoT here is exactly what `yaml.safe_load(mesh.yaml)` would give, so every test exercises the same
`parse_mesh` path as the CLI and the inventory plugin.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
from typing import Any

import pytest
import yaml

from mesh_tasks.core.findings import Finding, MeshInputError, Severity
from mesh_tasks.core.model import parse_mesh
from mesh_tasks.core.plan import MeshPlan, NodePlan, PeerPlan
from mesh_tasks.core.state import MeshState
from mesh_tasks.core.validation import validate


def node(
    i: int,
    role: str = "spoke",
    *,
    endpoint: bool | str | None = True,
    networks: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Node number i: management 192.0.2.i, endpoint 198.51.100.i, network 10.i.0.0/24 (by default)."""
    data: dict[str, Any] = {"role": role, "management": f"192.0.2.{i}"}
    if endpoint is True:
        data["endpoint"] = f"198.51.100.{i}"
    elif isinstance(endpoint, str):
        data["endpoint"] = endpoint
    data["networks"] = [f"10.{i}.0.0/24"] if networks is None else networks
    data.update(extra)
    return data


def sot(
    nodes: dict[str, dict[str, Any]],
    *,
    routing: str = "static",
    topology: str = "full-mesh",
    links: list[list[str]] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "mesh": {"name": "t", "routing": routing, "topology": topology, **settings},
        "nodes": copy.deepcopy(nodes),
    }
    if links:
        data["links"] = [list(link) for link in links]
    return data


def three_spokes_two_hubs(**kw: Any) -> dict[str, Any]:
    """hub1 (primary), hub2, spoke1..spoke3; spoke3 is NATed without an endpoint."""
    nodes = {
        "hub1": node(1, "hub", ospf_cost=10),
        "hub2": node(2, "hub", ospf_cost=100),
        "spoke1": node(11),
        "spoke2": node(12),
        "spoke3": node(13, endpoint=None, nat=True),
    }
    return sot(nodes, topology="hub-and-spoke", **kw)


def build(data: dict[str, Any], state: MeshState | None = None) -> tuple[MeshPlan, list[Finding]]:
    plan = MeshPlan(parse_mesh(data), state)
    return plan, validate(plan)


def valid_plan(data: dict[str, Any], state: MeshState | None = None) -> MeshPlan:
    plan, findings = build(data, state)
    errors = [f for f in findings if f.severity is Severity.ERROR]
    assert not errors, errors
    return plan


def shape_findings(data: Any) -> list[Finding]:
    with pytest.raises(MeshInputError) as info:
        parse_mesh(data)
    return info.value.findings


def at(findings: list[Finding], field: str) -> list[Finding]:
    return [f for f in findings if f.field == field]


def one(findings: list[Finding], field: str, severity: Severity = Severity.ERROR) -> Finding:
    """The single finding at `field`, with the expected severity."""
    hits = at(findings, field)
    assert len(hits) == 1, f"expected one finding at {field}, got {findings}"
    assert hits[0].severity is severity, hits[0]
    return hits[0]


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.ERROR]


def fake_key(name: str) -> str:
    """A well-formed (not secret, not real) WireGuard public key derived from a name."""
    return base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()


def dump(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def peer_of(plan: NodePlan, name: str) -> PeerPlan:
    hits = [p for _, p in plan.peers() if p.node == name]
    assert len(hits) == 1, f"{plan.name} has {len(hits)} peers named {name}"
    return hits[0]


def lpm(plan: NodePlan, address: str) -> str | None:
    """Static mode: the peer WireGuard picks for `address` (longest-prefix match over AllowedIPs)."""
    addr = ipaddress.ip_address(address)
    best: tuple[int, str] | None = None
    for _, peer in plan.peers():
        for prefix in peer.allowed_ips:
            net = ipaddress.ip_network(prefix)
            if net.version == addr.version and addr in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, peer.node)
    return None if best is None else best[1]
