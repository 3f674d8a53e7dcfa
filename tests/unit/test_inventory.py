"""The Nornir inventory plugin: one Host per node, role groups, the plan in host.data, the lab overlay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from nornir import InitNornir

from mesh_tasks.core.findings import MeshInputError
from mesh_tasks.core.load import build_plan
from mesh_tasks.core.plan import NodePlan

from .meshes import dump, three_spokes_two_hubs


def init(source: Path, overlay: Path | None = None) -> Any:
    options: dict[str, Any] = {"source": str(source)}
    if overlay is not None:
        options["overlay"] = str(overlay)
    return InitNornir(
        runner={"plugin": "serial"},
        inventory={"plugin": "mesh_tasks.MeshInventory", "options": options},
        logging={"enabled": False},
    )


@pytest.fixture
def source(tmp_path: Path) -> Path:
    data = three_spokes_two_hubs(routing="ospf")
    data["defaults"] = {"username": "ops"}
    data["nodes"]["spoke1"]["management"] = {"host": "mgmt-spoke1.example", "port": 2201, "username": "admin"}
    path = tmp_path / "mesh.yaml"
    path.write_text(dump(data))
    return path


def test_one_host_per_node(source: Path) -> None:
    nr = init(source)
    assert list(nr.inventory.hosts) == ["hub1", "hub2", "spoke1", "spoke2", "spoke3"]
    hub1 = nr.inventory.hosts["hub1"]
    assert (hub1.hostname, hub1.port, hub1.username, hub1.platform) == ("192.0.2.1", 22, "ops", "linux")
    spoke1 = nr.inventory.hosts["spoke1"]
    assert (spoke1.hostname, spoke1.port, spoke1.username) == ("mgmt-spoke1.example", 2201, "admin")
    for name, host in nr.inventory.hosts.items():
        assert host.platform == "linux"
        plan = host.data["plan"]
        assert isinstance(plan, NodePlan)
        assert plan.name == name
        assert host.data["role"] == plan.role
        assert host["plan"] is plan


def test_groups_by_role(source: Path) -> None:
    nr = init(source)
    assert set(nr.inventory.groups) == {"hubs", "spokes"}
    assert sorted(nr.filter(lambda h: h.has_parent_group("hubs")).inventory.hosts) == ["hub1", "hub2"]
    spokes = nr.inventory.children_of_group("spokes")
    assert sorted(h.name for h in spokes) == ["spoke1", "spoke2", "spoke3"]


def test_netmiko_options_without_overlay(source: Path) -> None:
    nr = init(source)
    opts = nr.inventory.hosts["hub1"].get_connection_parameters("netmiko")
    assert opts.platform == "linux"
    assert opts.extras["ssh_strict"] is True
    assert "key_file" not in opts.extras


def test_the_plan_is_the_same_as_the_cores(source: Path) -> None:
    plan, _ = build_plan(source)
    nr = init(source)
    for name, host in nr.inventory.hosts.items():
        assert host.data["plan"] == plan.node(name)


def test_overlay_replaces_targets_and_sets_ssh_extras(source: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "ssh": {"username": "lab", "key_file": "/lab/id_ed25519", "known_hosts": "/lab/known_hosts"},
                "nodes": {
                    "hub1": {"management": {"host": "172.30.0.1", "port": 2222}, "endpoint_host": "172.31.0.1"},
                    "spoke2": {"management": {"host": "172.30.0.12"}, "endpoint_host": "172.31.0.12"},
                },
            }
        )
    )
    nr = init(source, overlay)
    hub1, spoke2, hub2 = (nr.inventory.hosts[n] for n in ("hub1", "spoke2", "hub2"))
    assert (hub1.hostname, hub1.port, hub1.username) == ("172.30.0.1", 2222, "lab")
    assert (spoke2.hostname, spoke2.port, spoke2.username) == ("172.30.0.12", 22, "lab")
    assert (hub2.hostname, hub2.username) == ("192.0.2.2", "lab")  # not in the overlay: SoT target, overlay ssh
    for host in nr.inventory.hosts.values():
        extras = host.get_connection_parameters("netmiko").extras
        assert extras["ssh_strict"] is True
        assert extras["alt_key_file"] == "/lab/known_hosts"
        assert extras["key_file"] == "/lab/id_ed25519"
        assert extras["use_keys"] is True
    # peers now send handshakes to the overlay's endpoint hosts
    peers = {p.node: p for _, p in spoke2.data["plan"].peers()}
    assert peers["hub1"].endpoint.startswith("172.31.0.1:")
    assert peers["hub2"].endpoint.startswith("198.51.100.2:")
    hub_peers = {p.node: p for _, p in hub1.data["plan"].peers()}
    assert hub_peers["spoke2"].endpoint.startswith("172.31.0.12:")


def test_overlay_naming_an_unknown_node(source: Path, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"nodes": {"ghost": {"management": {"host": "172.30.0.9"}}}}))
    with pytest.raises(MeshInputError) as info:
        init(source, overlay)
    assert info.value.findings[0].node == "ghost"


def test_errors_raise_mesh_input_error(tmp_path: Path) -> None:
    data = three_spokes_two_hubs()
    data["nodes"]["hub1"]["routes"] = ["172.16.0.0/12"]
    data["nodes"]["hub2"]["routes"] = ["172.16.0.0/12"]
    path = tmp_path / "mesh.yaml"
    path.write_text(dump(data))
    with pytest.raises(MeshInputError) as info:
        init(path)
    assert [f.field for f in info.value.findings] == ["nodes.hub2.routes"]  # errors only, not the warning


def test_shape_errors_raise_mesh_input_error(tmp_path: Path) -> None:
    data = three_spokes_two_hubs()
    data["nodes"]["spoke1"]["colour"] = "blue"
    path = tmp_path / "mesh.yaml"
    path.write_text(dump(data))
    with pytest.raises(MeshInputError, match=r"nodes\.spoke1\.colour"):
        init(path)


def test_warnings_do_not_stop_the_inventory(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text(dump(three_spokes_two_hubs()))  # static with two hubs: a warning
    assert len(init(path).inventory.hosts) == 5


def test_register_by_hand_is_idempotent() -> None:
    from nornir.core.plugins.inventory import InventoryPluginRegister

    from mesh_tasks.inventory import PLUGIN_NAME, MeshInventory, register

    register()
    register()
    assert InventoryPluginRegister.available[PLUGIN_NAME] is MeshInventory
