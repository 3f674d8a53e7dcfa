"""Operations on real lab hosts: hub failover in routed mode, NAT keepalive in static mode.

Failover (tests/lab/ops_meshes/failover.yaml: hub1 primary at OSPF cost 10, hub2 backup at 100, spokes
1-3, spoke3 NATed): a 10 ms ping spoke1 -> spoke2 runs through hub1; hub1 fails (all its WireGuard
interfaces down, or its underlay cable cut); traffic must move to hub2 (under 1 s with BFD), verify must
call the mesh "degraded but connected" with exactly hub1 dead and hub1's links down; when hub1 comes back
the route returns to it and verify is green again. Timer variants of the same SoT (BFD 50 ms x 3, then
hello 1 / dead 4 without BFD) are deployed onto the same lab, one after the other. The default timers
(hello 10 / dead 40: ~40 s of outage) are only measured by benchmarks/operations.py, whose measurement
code this module loads by path (one method for both).

NAT (tests/lab/ops_meshes/nat.yaml, static mode): the NAT routers' UDP conntrack timeouts are lowered
to 8 s; after 20 s of silence a hub-initiated ping reaches the spoke with keepalive 5 s and does not
reach the spoke whose keepalive was turned off at runtime (its mapping expired).

Every dataplane packet is sent INSIDE lab hosts, LAN address to LAN address (never from the root
namespace). Figures are printed: run with -s to see them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from mesh_tasks.lab.lab import Lab

pytestmark = pytest.mark.lab

LabFactory = Callable[..., Lab]
HERE = Path(__file__).resolve().parent
OPS_MESHES = HERE / "ops_meshes"
NAT_TIMEOUT = 8  # s, both conntrack UDP timeouts on every NAT router
IDLE = 20  # s of silence: longer than NAT_TIMEOUT with margin, longer than 3 keepalives of 5 s


def _load_ops() -> ModuleType:
    path = HERE.parents[1] / "benchmarks" / "operations.py"
    spec = importlib.util.spec_from_file_location("mesh_tasks_ops_bench", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


ops = _load_ops()


def ping_ok(lab: Lab, src: str, dst: str, count: int = 3) -> tuple[bool, str]:
    """From inside src, LAN to LAN: did any of `count` echo requests get an answer?"""
    proc = lab.exec(
        src,
        [
            "ping",
            "-n",
            "-c",
            str(count),
            "-i",
            "0.3",
            "-W",
            "1",
            "-w",
            str(count + 2),
            "-I",
            ops.lan(lab, src),
            ops.lan(lab, dst),
        ],
        timeout=30,
    )
    summary = [line for line in proc.stdout.splitlines() if "transmitted" in line]
    return proc.returncode == 0, (summary[0] if summary else proc.stdout.strip()[-200:])


def set_keepalive(lab: Lab, node: str, seconds: int) -> list[str]:
    """Runtime change on node: persistent-keepalive of every peer of every WireGuard interface."""
    done = []
    for line in lab.exec(node, ["wg", "show", "all", "peers"], check=True).stdout.splitlines():
        iface, key = line.split()[:2]
        lab.exec(node, ["wg", "set", iface, "peer", key, "persistent-keepalive", str(seconds)], check=True)
        done.append(iface)
    return done


def tx_bytes(lab: Lab, node: str) -> int:
    """Bytes node's WireGuard interfaces have sent, all peers."""
    return sum(int(f) for f in lab.exec(node, ["wg", "show", "all", "transfer"]).stdout.split()[3::4])


def wait_quiet(lab: Lab, node: str, seconds: float, timeout: float) -> float:
    """Wait until node has sent nothing over WireGuard for `seconds`; returns the quiet time reached."""
    t0 = last_change = time.monotonic()
    last = tx_bytes(lab, node)
    while time.monotonic() - last_change < seconds and time.monotonic() - t0 < timeout:
        time.sleep(1.0)
        now = tx_bytes(lab, node)
        if now != last:
            last, last_change = now, time.monotonic()
    return time.monotonic() - last_change


def keepalives(lab: Lab, node: str) -> list[str]:
    return lab.exec(node, ["wg", "show", "all", "persistent-keepalive"]).stdout.split()[2::3]


# ---- hub failover, routed mode -------------------------------------------------------------------------

HUB1_LINKS = ["hub1<->hub2", "hub1<->spoke1", "hub1<->spoke2", "hub1<->spoke3"]


@pytest.fixture(scope="class")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ops-failover")


@pytest.fixture(scope="class")
def failover_lab(lab_factory: LabFactory, work: Path) -> Iterator[Lab]:
    sot = ops.write_variant(work / "sot", ops.TIMERS["bfd-50x3"])
    lab = lab_factory(sot, nat_timeout=NAT_TIMEOUT, nat_stream_timeout=NAT_TIMEOUT)
    yield lab
    lab.down()  # free the 2 cores for the next class; lab_factory tears down again anyway


@pytest.fixture(scope="class")
def nat_sot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("ops-nat")
    shutil.copy(OPS_MESHES / "nat.yaml", d / "mesh.yaml")
    return d / "mesh.yaml"


@pytest.fixture(scope="class")
def nat_lab(lab_factory: LabFactory, nat_sot: Path) -> Iterator[Lab]:
    lab = lab_factory(nat_sot, nat_timeout=NAT_TIMEOUT, nat_stream_timeout=NAT_TIMEOUT)
    yield lab
    lab.down()


class TestHubFailover:
    results: list[Any] = []  # noqa: RUF012 - one table for the class, printed by the last test

    def _deploy(self, lab: Lab, work: Path, case: str) -> Path:
        timers = ops.TIMERS[case]
        sot = ops.write_variant(work / "sot", timers)
        t0 = time.monotonic()
        report = ops.run_deploy(sot, lab.overlay_path)
        print(
            f"\ndeploy {case} ({timers.label}): ok={report.ok} changed={sorted(report.changed)} "
            f"{time.monotonic() - t0:.1f}s"
        )
        assert report.ok, ops.failure_lines(report.verify) + ops.failure_lines(report.after_rollback)
        conf = lab.exec("spoke1", ["vtysh", "-c", "show running-config"]).stdout
        assert f"ip ospf hello-interval {timers.hello}" in conf or timers.hello == 10, conf
        assert (" ip ospf bfd" in conf) == bool(timers.bfd_ms), conf
        return sot

    def _failover(self, lab: Lab, work: Path, case: str, fault: str) -> Any:
        res = ops.measure_failover(lab, work / "sot" / "mesh.yaml", ops.TIMERS[case], fault)
        self.results.append(res)
        print(ops.HEADER)
        print(res.row())
        if res.bfd_flaps:
            print(
                f"WARNING: {res.bfd_flaps} BFD session-down events on tunnels not to hub1 (load: "
                f"{Path('/proc/loadavg').read_text().split()[:3]})"
            )
        # the traffic went spoke1 -> hub1 before, hub2 during, hub1 again after
        assert res.via["before"] == res.tunnels["primary"], (res.via, res.tunnels)
        assert res.switched_s is not None, f"spoke1's route never moved to hub2 ({res.via})"
        assert res.via["during"] == res.tunnels["backup"], (res.via, res.tunnels)
        assert res.health == {
            "verdict": "degraded but connected",
            "dead_nodes": ["hub1"],
            "down_links": HUB1_LINKS,
            "connected": True,
        }, ops.failure_lines(res.during)
        assert res.back_s is not None, f"spoke1's route never came back to hub1 ({res.via})"
        assert res.via["after"] == res.tunnels["primary"], (res.via, res.tunnels)
        assert res.after is not None and res.after.ok, ops.failure_lines(res.after)
        assert res.recovery_gap_s < 1.0, f"traffic interrupted {res.recovery_gap_s:.2f}s on the way back"
        return res

    def test_deploy_bfd_50x3_green(self, failover_lab: Lab, work: Path) -> None:
        lab = failover_lab
        self._deploy(lab, work, "bfd-50x3")
        status = ops.run_verify(work / "sot" / "mesh.yaml", lab.overlay_path)
        assert status.ok and status.health()["verdict"] == "healthy", ops.failure_lines(status)
        peers = lab.exec("spoke1", ["vtysh", "-c", "show bfd peers brief"]).stdout
        print(peers)
        assert peers.count(" up ") >= 2, peers

    @pytest.mark.parametrize("fault", ["wg-stop", "link-down"])
    def test_bfd_50x3_failover_under_a_second(self, failover_lab: Lab, work: Path, fault: str) -> None:
        lab = failover_lab
        res = self._failover(lab, work, "bfd-50x3", fault)
        assert res.outage_ms < 1000, f"BFD 50x3 outage {res.outage_ms:.0f} ms (flaps {res.bfd_flaps})"

    def test_redeploy_fast_hello_without_bfd(self, failover_lab: Lab, work: Path) -> None:
        lab = failover_lab
        self._deploy(lab, work, "fast-hello")
        peers = lab.exec("spoke1", ["vtysh", "-c", "show bfd peers brief"]).stdout
        assert " up " not in peers, f"BFD sessions left after BFD was turned off:\n{peers}"

    @pytest.mark.parametrize("fault", ["wg-stop", "link-down"])
    def test_fast_hello_failover_within_dead_interval(self, failover_lab: Lab, work: Path, fault: str) -> None:
        lab = failover_lab
        res = self._failover(lab, work, "fast-hello", fault)
        assert res.outage_ms < (4 + 2) * 1000, f"hello 1 / dead 4 outage {res.outage_ms:.0f} ms"

    def test_routed_mode_ospf_hellos_keep_nat_mapping_alive(self, failover_lab: Lab) -> None:
        lab = failover_lab
        """Finding: in routed mode a NATed spoke needs no keepalive while OSPF runs (hellos are traffic)."""
        assert lab.nat_timeouts("spoke3") == (NAT_TIMEOUT, NAT_TIMEOUT)
        ifaces = set_keepalive(lab, "spoke3", 0)
        assert set(keepalives(lab, "spoke3")) == {"off"}, keepalives(lab, "spoke3")
        time.sleep(IDLE)
        ok, summary = ping_ok(lab, "hub1", "spoke3")
        print(
            f"routed mode: spoke3 behind NAT (UDP timeouts {NAT_TIMEOUT}s), keepalive off on {ifaces}, "
            f"{IDLE}s without data: hub1-initiated ping {'OK' if ok else 'FAILED'} ({summary}) -- "
            "OSPF hellos every 1 s keep the NAT mapping alive"
        )
        set_keepalive(lab, "spoke3", 5)
        assert ok, summary

    def test_failover_table(self) -> None:
        print("\n== hub failover: spoke1 -> spoke2 ping every 10 ms, primary hub1 fails ==")
        print(ops.table(self.results))
        print(
            "outage ms = largest gap between replies across the fault; switched/back = fault/undo -> "
            "spoke1's route on hub2/hub1; rec.lost/rec.gap = after the undo; flaps = BFD down events on other "
            "tunnels. Default timers (hello 10 / dead 40): benchmarks/operations.py --cases default"
        )
        assert self.results


# ---- NAT keepalive, static mode ------------------------------------------------------------------------


class TestNatKeepalive:
    def test_nat_without_keepalive_is_refused(self, tmp_path: Path) -> None:
        data = yaml.safe_load((OPS_MESHES / "nat.yaml").read_text())
        data["nodes"]["nat2"]["keepalive"] = 0
        bad = tmp_path / "mesh.yaml"
        bad.write_text(yaml.safe_dump(data, sort_keys=False))
        res = subprocess.run(
            [sys.executable, "-m", "mesh_tasks", "validate", "--inventory", str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "COLUMNS": "400", "NO_COLOR": "1"},
        )
        out = " ".join((res.stdout + res.stderr).split())
        print(out)
        assert res.returncode != 0
        assert "nat2" in out and "keepalive" in out.lower(), out

    def test_deploy_green(self, nat_lab: Lab, nat_sot: Path) -> None:
        lab, sot = nat_lab, nat_sot
        assert lab.nat_timeouts("nat1") == lab.nat_timeouts("nat2") == (NAT_TIMEOUT, NAT_TIMEOUT)
        report = ops.run_deploy(sot, lab.overlay_path)
        assert report.ok, ops.failure_lines(report.verify)
        assert keepalives(lab, "nat1") == keepalives(lab, "nat2") == ["5"]
        assert ops.run_verify(sot, lab.overlay_path).ok

    def test_keepalive_holds_nat_mapping_and_its_absence_loses_it(self, nat_lab: Lab, nat_sot: Path) -> None:
        lab, sot = nat_lab, nat_sot
        # negative control: nat2 stops its keepalive at runtime (the SoT would refuse keepalive 0)
        set_keepalive(lab, "nat2", 0)
        assert keepalives(lab, "nat2") == ["off"]
        # Silence from nat2 for IDLE s, counted from the last byte it sent: WireGuard's passive keepalive
        # still goes out 10 s after the last data received (the deploy's verify probes).
        quiet = wait_quiet(lab, "nat2", IDLE, timeout=IDLE + 25)
        assert quiet >= IDLE, f"nat2 kept sending ({quiet:.0f}s quiet)"
        with ThreadPoolExecutor(2) as pool:
            kept, lost = pool.map(lambda n: ping_ok(lab, "hub1", n), ["nat1", "nat2"])
        endpoints = lab.exec("hub1", ["wg", "show", "wg0", "endpoints"]).stdout.strip().replace("\n", "; ")
        print(f"\nstatic mode, NAT UDP timeouts {NAT_TIMEOUT}s, nat2 quiet {quiet:.0f}s, then hub1 -> LAN:")
        print(f"  nat1 keepalive 5s : {'OK' if kept[0] else 'FAILED'} ({kept[1]})")
        print(f"  nat2 keepalive off: {'OK' if lost[0] else 'FAILED'} ({lost[1]})")
        print(f"  hub1's endpoints: {endpoints}")
        # nat2 sends something (keepalive back on: one keepalive at once): the mapping is re-created
        set_keepalive(lab, "nat2", 5)
        time.sleep(1.0)
        back = ping_ok(lab, "hub1", "nat2")
        print(f"  nat2 keepalive on again: {'OK' if back[0] else 'FAILED'} ({back[1]})")
        assert kept[0], f"keepalive 5 s did not hold the mapping: {kept[1]}"
        assert not lost[0], f"hub reached nat2 although its mapping should have expired: {lost[1]}"
        assert back[0], back[1]
        assert ops.run_verify(sot, lab.overlay_path, settle=20).ok
