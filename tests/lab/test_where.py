"""`where DEST` on real hosts: plan and live hosts agree, and a failover shows up as a disagreement."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import cli as run_cli
from small_meshes import three_node_mesh

from mesh_tasks.workflow import deploy, open_nornir

pytestmark = pytest.mark.lab


def test_where_agrees_then_flags_the_detour(lab_factory: Any, tmp_path: Path) -> None:
    data = three_node_mesh("ospf")
    data["nodes"]["hub2"] = {
        "role": "hub",
        "management": "203.0.113.2",
        "endpoint": "203.0.113.2",
        "networks": ["10.32.0.0/24"],
        "ospf_cost": 100,
    }
    data["nodes"]["hub1"]["ospf_cost"] = 10
    sot = tmp_path / "mesh.yaml"
    sot.write_text(yaml.safe_dump(data, sort_keys=False))
    lab = lab_factory(sot)
    with open_nornir(sot, lab.overlay_path) as nr:
        assert deploy(nr).ok
    args = ("--inventory", str(sot), "--overlay", str(lab.overlay_path), "--json")
    where = run_cli("where", "10.42.0.9", *args)
    assert where.returncode == 0, where.stdout
    rows = {r["node"]: r for r in json.loads(where.stdout)["nodes"]}
    assert rows["spoke2"]["planned"].startswith("local")
    assert "-> hub1" in rows["spoke1"]["planned"] and "-> hub1" in rows["spoke1"]["live"]

    lab.wg_stop("hub1")
    try:
        deadline = time.monotonic() + 20  # BFD off here: OSPF dead interval (4 s) moves the route to hub2
        while True:
            where = run_cli("where", "10.42.0.9", "--from", "spoke1", *args)
            row = json.loads(where.stdout)["nodes"][0]
            if "hub2" in row["live"] or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert where.returncode == 1 and not row["agree"], row
        assert "-> hub2" in row["live"] and "-> hub1" in row["planned"]
    finally:
        lab.wg_start("hub1")
