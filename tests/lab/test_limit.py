"""`deploy --limit`: only the named hosts (or groups) are touched, and they keep their peers outside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import cli as run_cli
from small_meshes import three_node_mesh

pytestmark = pytest.mark.lab


def test_limited_deploy_touches_only_the_limit_and_keeps_its_peers(lab_factory: Any, tmp_path: Path) -> None:
    data = three_node_mesh("ospf")
    sot = tmp_path / "mesh.yaml"
    sot.write_text(yaml.safe_dump(data, sort_keys=False))
    lab = lab_factory(sot)
    args = ("--inventory", str(sot), "--overlay", str(lab.overlay_path), "--json")
    first = run_cli("deploy", *args)
    assert first.returncode == 0, first.stdout[-3000:]

    data["nodes"]["spoke1"]["networks"].append("10.41.9.0/24")  # only spoke1's frr.conf changes
    sot.write_text(yaml.safe_dump(data, sort_keys=False))
    limited = run_cli("deploy", "--limit", "spokes", *args)
    report = json.loads(limited.stdout)
    assert limited.returncode == 0, limited.stdout[-3000:]
    assert report["changed"] == ["spoke1"]
    assert set(report["hosts"]) == {"spoke1", "spoke2"}  # the group, and nothing else was contacted
    peers = lab.exec("spoke1", "wg show all peers").stdout.split()
    hub_key = json.loads((tmp_path / "mesh.state.json").read_text())["public_keys"]["hub1"]
    assert hub_key in peers  # the peer outside the limit is still configured

    unknown = run_cli("deploy", "--limit", "nosuchhost", *args)
    assert unknown.returncode == 2 and "nosuchhost" in unknown.stderr
