"""apply.sh's repair for zebra missing a new interface's address (FRRouting/frr#13288), on real hosts.

The upstream race cannot be triggered on demand, so each host gets a test double of vtysh in front of the
real one (a tmpfs over /usr/local/sbin inside that host only; apply.sh and the login shell look there
first). It changes only what `vtysh -c 'show interface'` says; FRR itself, OSPF and verify are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_helpers import describe, run_deploy
from small_meshes import three_node_mesh

from mesh_tasks.lab.lab import Lab

pytestmark = pytest.mark.lab

# zebra lists every wgt interface but none of their IPv4 addresses: the bug's signature
FORGETFUL = """#!/bin/sh
if [ "$*" = "-c show interface" ]; then
	/usr/bin/vtysh "$@" | awk '/^Interface /{i=$2} !(i ~ /^wgt/ && /^  inet /)'
else
	exec /usr/bin/vtysh "$@"
fi
"""
# zebra does not answer at all (restarting, or not running): nothing may be touched
SILENT = """#!/bin/sh
[ "$*" = "-c show interface" ] && exit 1
exec /usr/bin/vtysh "$@"
"""


def install_vtysh_double(lab: Lab, node: str, script: str) -> None:
    lab.exec(node, "mount -t tmpfs -o mode=0755 tmpfs /usr/local/sbin", check=True)
    lab.exec(node, "cat > /usr/local/sbin/vtysh && chmod 755 /usr/local/sbin/vtysh", input=script, check=True)


def tunnel_addresses(lab: Lab, node: str) -> set[str]:
    out = lab.exec(node, "ip -4 -o address show", check=True).stdout
    return {f"{f[3]} on {f[1]}" for f in (line.split() for line in out.splitlines()) if f[1].startswith("wgt")}


def reannounced(report: Any, node: str) -> set[str]:
    return {a.removeprefix("re-announced ") for a in report.hosts[node].actions if a.startswith("re-announced")}


def still_lacking(report: Any, node: str) -> set[str]:
    """The addresses apply.sh warns about: zebra lacked them even after the re-announce."""
    warning = "warning: zebra still lacks "
    return {a.removeprefix(warning).split(" (")[0] for a in report.hosts[node].actions if a.startswith(warning)}


def test_addresses_zebra_lacks_are_announced_again_on_new_interfaces_only(lab_factory: Any, tmp_path: Path) -> None:
    data = three_node_mesh("ospf")
    sot = tmp_path / "mesh.yaml"
    sot.write_text(yaml.safe_dump(data, sort_keys=False))
    lab = lab_factory(sot)
    install_vtysh_double(lab, "spoke1", FORGETFUL)
    install_vtysh_double(lab, "spoke2", SILENT)

    first = run_deploy(sot, lab.overlay_path)
    assert first.ok, describe(first)
    assert reannounced(first, "spoke1") == tunnel_addresses(lab, "spoke1") != set(), describe(first)
    # the double keeps "forgetting" after the re-announce too: apply says so instead of claiming success
    assert still_lacking(first, "spoke1") == tunnel_addresses(lab, "spoke1"), describe(first)
    assert reannounced(first, "spoke2") == set(), describe(first)  # zebra silent: hands off
    assert reannounced(first, "hub1") == set(), describe(first)  # zebra knew every address

    # A change that creates no interface: the repair never touches tunnels that already carry traffic,
    # even where zebra (the double) still claims not to know their addresses.
    data["mesh"]["ospf"]["lsa_arrival_ms"] = 50  # every frr.conf changes, no interface is created
    sot.write_text(yaml.safe_dump(data, sort_keys=False))
    second = run_deploy(sot, lab.overlay_path)
    assert second.ok, describe(second)
    assert sorted(second.changed) == ["hub1", "spoke1", "spoke2"], describe(second)
    assert all(reannounced(second, node) == set() for node in second.changed), describe(second)
