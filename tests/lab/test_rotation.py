"""Key rotation on real hosts, with a 10 ms ping through the rotating node for the whole command.

The ping runs inside a lab host, LAN to LAN; the rotation runs through the CLI, as an operator would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import cli as run_cli
from deploy_helpers import lost_packets
from small_meshes import three_node_mesh

from mesh_tasks.core.state import load_state, state_path
from mesh_tasks.lab.lab import Lab
from mesh_tasks.workflow import deploy, open_nornir

pytestmark = pytest.mark.lab


def _peer_keys(lab: Lab) -> dict[str, str]:
    """Every host's `wg show all peers` (public keys only; nothing secret leaves the host)."""
    return {n: lab.exec(n, "wg show all peers").stdout for n in lab.nodes}


@pytest.mark.parametrize("routing", ["ospf", "static"])
def test_rotation_in_the_safe_order_loses_nothing(routing: str, lab_factory: Any, tmp_path: Path) -> None:
    sot = tmp_path / "mesh.yaml"
    sot.write_text(yaml.safe_dump(three_node_mesh(routing), sort_keys=False))
    lab = lab_factory(sot)
    with open_nornir(sot, lab.overlay_path) as nr:
        first = deploy(nr)
    assert first.ok, first.as_dict()
    old = load_state(state_path(sot)).public_keys["hub1"]

    # spoke1 -> hub1's LAN: every packet crosses the tunnel whose hub end changes its key.
    ping = lab.spawn("spoke1", "ping -q -i 0.01 -w 20 -I 10.41.0.1 10.31.0.1")
    time.sleep(2)
    started = time.monotonic()
    rotated = run_cli("rotate-key", "hub1", "--inventory", str(sot), "--overlay", str(lab.overlay_path), "--json")
    took = time.monotonic() - started
    out, _ = ping.communicate(timeout=60)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    [report] = json.loads(rotated.stdout)
    sent, received, _ = lost_packets(out)
    lost = sent - received
    print(
        f"\nrotate-key hub1 ({routing}): {took:.1f} s, steps {report['steps']}, "
        f"ping -i 0.01: {lost} of {sent} lost ({lost * 10} ms)"
    )

    new = report["new_public_key"]
    assert report["old_public_key"] == old != new
    assert load_state(state_path(sot)).public_keys["hub1"] == new
    assert not load_state(state_path(sot)).rotations
    peers = _peer_keys(lab)
    assert all(old not in keys for keys in peers.values()), "the old public key survives on a host"
    assert new in peers["spoke1"] and new in peers["spoke2"]
    assert report["deploy"]["verify"]["ok"]
    assert lost == 0

    again = run_cli("verify", "--inventory", str(sot), "--overlay", str(lab.overlay_path), "--json", "--settle", "10")
    assert again.returncode == 0, again.stdout[-2000:]


def test_interrupted_rotation_resumes(lab_factory: Any, tmp_path: Path) -> None:
    """Kill the switch half-way (state says 'announced'): running the command again completes it."""
    sot = tmp_path / "mesh.yaml"
    sot.write_text(yaml.safe_dump(three_node_mesh("static"), sort_keys=False))
    lab = lab_factory(sot)
    with open_nornir(sot, lab.overlay_path) as nr:
        assert deploy(nr).ok
    old = load_state(state_path(sot)).public_keys["spoke1"]
    # The node switched on its own (as if the controller died right after the node's part of the switch).
    lab.exec("spoke1", "cd /etc/wireguard && umask 077 && wg genkey > private.key.next")
    new = lab.exec("spoke1", "wg pubkey < /etc/wireguard/private.key.next").stdout.strip()
    state = load_state(state_path(sot))
    state.rotations["spoke1"] = {"old": old, "new": new, "phase": "announced"}
    from mesh_tasks.core.state import save_state

    save_state(state_path(sot), state)
    lab.exec(
        "spoke1",
        "mv /etc/wireguard/private.key.next /etc/wireguard/private.key && "
        "wg set wg0 private-key /etc/wireguard/private.key",
    )
    resumed = run_cli("rotate-key", "spoke1", "--inventory", str(sot), "--overlay", str(lab.overlay_path), "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    [report] = json.loads(resumed.stdout)
    assert report["new_public_key"] == new
    assert all(old not in keys for keys in _peer_keys(lab).values())
