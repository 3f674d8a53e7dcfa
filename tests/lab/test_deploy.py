"""End-to-end deploy and verify on real lab hosts (issue 4 acceptance).

One lab per topology (class-scoped: each lab is torn down when its class ends, and lab_factory tears
everything down at the end of the module anyway). Tests inside a class run in file order on purpose:
each one starts from the state the previous one left.

The SoT files live in tests/lab/meshes/; deploy writes mesh.state.json, mesh.rendered/ and its lock file
beside the SoT, so every class works on a copy in its own tmp dir.

Dataplane checks ping from INSIDE lab hosts, LAN address to LAN address (never from the root namespace).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mesh_tasks.lab.lab import Lab
from mesh_tasks.workflow import deploy_lock
from deploy_helpers import (
    MESHES,
    cli,
    copy_sot,
    describe,
    failures,
    lost_packets,
    ping_matrix,
    run_deploy,
    run_verify,
    wg_links,
    write_overlay,
)

pytestmark = pytest.mark.lab

LabFactory = Callable[..., Lab]


def _on_hosts(lab: Lab, nodes: list[str], cmd: str) -> dict[str, str]:
    return {n: lab.exec(n, cmd).stdout for n in nodes}


# ---- static full mesh (6 nodes, n6 NATed without endpoint) -------------------------------------------

FULL = ["n1", "n2", "n3", "n4", "n5", "n6"]


class TestStaticFullMesh:
    @pytest.fixture(scope="class")
    def lab(self, lab_factory: LabFactory) -> Iterator[Lab]:
        lab = lab_factory(MESHES / "static_full.yaml")
        yield lab
        lab.down()

    @pytest.fixture(scope="class")
    def sot(self, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return copy_sot(tmp_path_factory.mktemp("sfull"), "static_full.yaml")

    def test_dry_run_on_fresh_lab_shows_diffs_and_changes_nothing(self, lab: Lab, sot: Path) -> None:
        res = cli("deploy", "--inventory", str(sot), "--overlay", str(lab.overlay_path), "--dry-run")
        print(res.stdout[-3000:])
        assert res.returncode == 0, res.stdout + res.stderr
        for node in FULL:  # a unified diff per host, headed by the host's name
            assert f"--- {node}:/etc/wireguard/wg0.conf" in res.stdout or f"{node}:/etc/wireguard" in res.stdout
        assert "@@" in res.stdout and "+[Interface]" in res.stdout
        data = json.loads(cli("deploy", "--inventory", str(sot), "--overlay", str(lab.overlay_path),
                              "--dry-run", "--json").stdout)
        assert data["dry_run"] is True
        for node in FULL:
            diff = data["hosts"][node]["diff"]
            assert diff.startswith("---") and "\n+++ " in diff and "\n@@ " in diff, (node, diff)
            assert not re.search(r"[A-Za-z0-9+/]{43}=", diff.replace(" ", "")) or "PrivateKey" not in diff
        # nothing changed on the hosts: no config, no key, no interface
        listing = _on_hosts(lab, FULL, "ls -A /etc/wireguard; wg show interfaces")
        assert all(out.strip() == "" for out in listing.values()), listing
        # ... and nothing written beside the SoT
        assert not (sot.parent / "mesh.state.json").exists()
        assert not (sot.parent / "mesh.rendered").exists()

    def test_concurrent_deploy_is_refused_naming_the_lock(self, lab: Lab, sot: Path) -> None:
        with deploy_lock(sot):
            started = time.monotonic()
            res = cli("deploy", "--inventory", str(sot), "--overlay", str(lab.overlay_path), timeout=60)
            took = time.monotonic() - started
        out = " ".join((res.stdout + res.stderr).split())
        print(out, f"({took:.1f}s)")
        assert res.returncode != 0
        assert "another deploy" in out and str(sot) in out and f"pid {os.getpid()}" in out, out
        assert took < 30  # refused at once, not queued
        listing = _on_hosts(lab, FULL, "ls -A /etc/wireguard")
        assert all(out.strip() == "" for out in listing.values()), listing

    def test_deploy_full_mesh_green_and_dataplane_agrees(self, lab: Lab, sot: Path) -> None:
        report = run_deploy(sot, lab.overlay_path)
        print(describe(report))
        assert report.ok, describe(report)
        assert sorted(report.changed) == sorted(FULL)
        assert report.verify is not None and report.verify.ok
        assert report.after_rollback is None
        status = run_verify(sot, lab.overlay_path)
        assert status.ok, failures(status)
        broken = ping_matrix(lab, FULL)
        print(f"dataplane: {len(FULL) * (len(FULL) - 1) - len(broken)}/{len(FULL) * (len(FULL) - 1)} pings ok")
        assert broken == [], broken
        # both say green at the same time
        assert run_verify(sot, lab.overlay_path).ok

    def test_second_deploy_is_idempotent(self, lab: Lab, sot: Path) -> None:
        before = {n: wg_links(lab, n) for n in FULL}
        keys = _on_hosts(lab, FULL, "md5sum /etc/wireguard/private.key")
        report = run_deploy(sot, lab.overlay_path)
        print(describe(report))
        assert report.ok, describe(report)
        assert report.changed == []
        for h in report.hosts.values():
            assert (h.changed, h.actions, h.diff) == (False, [], ""), h
        assert report.verify is None  # nothing changed: nothing to verify or roll back
        assert {n: wg_links(lab, n) for n in FULL} == before  # no interface re-created
        assert _on_hosts(lab, FULL, "md5sum /etc/wireguard/private.key") == keys

    def test_broken_change_fails_verify_and_is_rolled_back(
        self, lab: Lab, sot: Path, tmp_path: Path
    ) -> None:
        # n3's endpoint moved to an underlay address nobody has (inside the lab's own underlay /24)
        nobody = str(ipaddress.ip_interface(f"{lab.underlay('n1')}/24").network[250])
        assert nobody not in {lab.underlay(n) for n in FULL}
        bad = write_overlay(lab, tmp_path / "bad_overlay.yaml", endpoints={"n3": nobody})
        report = run_deploy(sot, bad)
        print(describe(report))
        assert not report.ok
        peers = [n for n in FULL if n != "n3"]  # every peer of n3 has its endpoint
        assert sorted(report.changed) == sorted(peers)
        assert report.verify is not None and not report.verify.ok
        assert any(c.check == "endpoint" and c.subject.endswith(":n3") for c in report.verify.failures)
        assert report.after_rollback is not None
        assert report.after_rollback.ok, failures(report.after_rollback)
        assert all(report.hosts[n].rolled_back for n in report.changed)
        assert not report.hosts["n3"].rolled_back
        live = _on_hosts(lab, peers, "cat /etc/wireguard/wg0.conf; wg show wg0 endpoints")
        assert all(nobody not in out for out in live.values()), live
        res = cli("verify", "--inventory", str(sot), "--overlay", str(lab.overlay_path), "--json", "--settle", "30")
        assert res.returncode == 0, res.stdout[-3000:]
        assert json.loads(res.stdout)["ok"] is True
        assert ping_matrix(lab, FULL) == []
        # the rendered record beside the SoT is the rolled-back one: a redeploy changes nothing
        again = run_deploy(sot, lab.overlay_path)
        assert again.ok and again.changed == [], describe(again)
