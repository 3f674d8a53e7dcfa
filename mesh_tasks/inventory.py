"""Nornir inventory plugin: one Host per mesh node, groups by role, the node's plan in host.data.

    InitNornir(inventory={"plugin": "mesh_tasks.MeshInventory",
                          "options": {"source": "inventory/mesh.yaml"}})

Registered under the `nornir.plugins.inventory` entry point; from a checkout without installing,
call `register()` first. A mesh with validation errors raises MeshInputError: nothing runs on a mesh
that would be pushed broken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nornir.core.inventory import (
    ConnectionOptions,
    Defaults,
    Group,
    Groups,
    Host,
    Hosts,
    Inventory,
    ParentGroups,
)
from nornir.core.plugins.inventory import InventoryPluginRegister

from mesh_tasks.core.findings import MeshInputError, Severity
from mesh_tasks.core.load import build_plan
from mesh_tasks.core.model import Management

PLUGIN_NAME = "mesh_tasks.MeshInventory"
ROLE_GROUPS = {"hub": "hubs", "spoke": "spokes"}


def netmiko_options(management: Management) -> ConnectionOptions:
    """The whole extras dict per host (nornir does not merge extras): key auth, strict host keys."""
    extras: dict[str, Any] = {"allow_agent": False, "conn_timeout": 10, "fast_cli": True}
    if management.key_file:
        extras |= {"use_keys": True, "key_file": management.key_file}
    if management.known_hosts:
        extras |= {
            "ssh_strict": True,
            "system_host_keys": False,
            "alt_host_keys": True,
            "alt_key_file": management.known_hosts,
        }
    else:
        extras |= {"ssh_strict": True, "system_host_keys": True}
    return ConnectionOptions(platform="linux", extras=extras)


class MeshInventory:
    def __init__(self, source: str = "inventory/mesh.yaml", overlay: str | None = None) -> None:
        self.source = Path(source)
        self.overlay = Path(overlay) if overlay else None

    def load(self) -> Inventory:
        plan, findings = build_plan(self.source, self.overlay)
        errors = [f for f in findings if f.severity is Severity.ERROR]
        if errors:
            raise MeshInputError(errors)
        groups = Groups({name: Group(name=name) for name in ROLE_GROUPS.values()})
        defaults = Defaults(data={"mesh_plan": plan, "source": str(self.source)})
        hosts = Hosts()
        for name, node in plan.mesh.nodes.items():
            mgmt = node.management
            hosts[name] = Host(
                name=name,
                hostname=mgmt.host,
                port=mgmt.port,
                username=mgmt.username,
                platform="linux",
                groups=ParentGroups([groups[ROLE_GROUPS[node.role]]]),
                data={"role": node.role, "plan": plan.node(name)},
                connection_options={"netmiko": netmiko_options(mgmt)},
                defaults=defaults,
            )
        return Inventory(hosts=hosts, groups=groups, defaults=defaults)


def register() -> None:
    """Register the plugin by hand (running from a checkout that was not pip-installed)."""
    if PLUGIN_NAME not in InventoryPluginRegister.available:
        InventoryPluginRegister.register(PLUGIN_NAME, MeshInventory)
