"""deploy and verify as an unprivileged login with passwordless sudo, as on servers without root SSH.

The lab hosts share this machine's /etc/passwd, so the test creates the user for its module and always
removes it again (user and sudoers drop-in).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from small_meshes import three_node_mesh

from mesh_tasks.workflow import deploy, open_nornir, verify

pytestmark = pytest.mark.lab
USER = "meshtasks-ops"
SUDOERS = Path(f"/etc/sudoers.d/{USER}")


@pytest.fixture(scope="module")
def sudo_user() -> Iterator[str]:
    # "*": no password login, but not "locked" ("!"), which sshd without PAM refuses even for keys
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", USER], check=True)
    try:
        SUDOERS.write_text(f"{USER} ALL=(root) NOPASSWD: ALL\n")
        SUDOERS.chmod(0o440)
        yield USER
    finally:
        SUDOERS.unlink(missing_ok=True)
        subprocess.run(["userdel", "--remove", USER], check=False, capture_output=True)


def authorize(user: str, public_key: str) -> None:
    ssh = Path(f"/home/{user}/.ssh")
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(public_key)
    (ssh / "authorized_keys").chmod(0o600)
    subprocess.run(["chown", "-R", f"{user}:{user}", str(ssh)], check=True)


def test_deploy_and_verify_through_sudo(sudo_user: str, lab_factory: Any, tmp_path: Path) -> None:
    sot = tmp_path / "mesh.yaml"
    sot.write_text(yaml.safe_dump(three_node_mesh("ospf"), sort_keys=False))
    lab = lab_factory(sot)
    authorize(sudo_user, Path(f"{lab.key_file}.pub").read_text())
    overlay = yaml.safe_load(lab.overlay_path.read_text())
    overlay["ssh"]["username"] = sudo_user
    sudo_overlay = tmp_path / "overlay-sudo.yaml"
    sudo_overlay.write_text(yaml.safe_dump(overlay))
    assert lab.ssh("hub1", "id -un").stdout.strip() == "root"  # the lab's own access is root ...
    with open_nornir(sot, sudo_overlay) as nr:
        assert nr.inventory.hosts["hub1"].username == sudo_user  # ... the product logs in as the sudo user
        report = deploy(nr)
        assert report.ok, report.as_dict()
        assert verify(nr).ok
    for node in lab.nodes:  # files written through sudo keep root ownership and secret modes
        stat = lab.exec(
            node,
            "stat -c '%U %a' /etc/wireguard/private.key /etc/wireguard/wgt0.conf 2>/dev/null "
            "|| stat -c '%U %a' /etc/wireguard/private.key",
        ).stdout.split("\n")
        assert stat[0] == "root 600", (node, stat)
