"""A hub with more than 20 tunnels in routed mode: every adjacency must come up.

Regression test: ospfd joins AllSPFRouters on each interface with one socket, and Linux's default
net.ipv4.igmp_max_memberships (20) left the 21st tunnel on deaf; the rendered PreUp lifts the limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mesh_tasks.workflow import deploy, open_nornir

pytestmark = pytest.mark.lab
SPOKES = 21


def test_hub_with_more_than_twenty_tunnels(lab_factory: Any, tmp_path: Path) -> None:
    nodes: dict[str, Any] = {
        "hub1": {"role": "hub", "management": "203.0.113.1", "endpoint": "203.0.113.1", "networks": ["10.60.0.0/24"]}
    }
    for i in range(1, SPOKES + 1):
        nodes[f"s{i}"] = {
            "management": f"203.0.113.{i + 10}",
            "endpoint": f"203.0.113.{i + 10}",
            "networks": [f"10.61.{i}.0/24"],
        }
    data = {
        "mesh": {
            "name": "bighub",
            "routing": "ospf",
            "topology": "hub-and-spoke",
            "ospf": {"hello_interval": 1, "dead_interval": 4},
            "bfd": {"enabled": False},
        },
        "nodes": nodes,
    }
    sot = tmp_path / "mesh.yaml"
    sot.write_text(yaml.safe_dump(data, sort_keys=False))
    lab = lab_factory(sot)
    with open_nornir(sot, lab.overlay_path) as nr:
        report = deploy(nr, rollback=False, settle=90)
    assert report.verify is not None
    not_full = [c for c in report.verify.failures if c.check == "ospf"]
    assert not not_full, not_full
    assert report.ok, [(c.node, c.subject, c.check, c.detail) for c in report.verify.failures[:10]]
    assert lab.exec("hub1", "sysctl -n net.ipv4.igmp_max_memberships").stdout.strip() == "4096"
