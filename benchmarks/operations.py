"""Operations on a live routed mesh: hub failover outage per timer setting, recovery loss, key rotation.

    sudo .venv/bin/python benchmarks/operations.py                      # all timer cases, wg-stop + link-down
    sudo .venv/bin/python benchmarks/operations.py --cases bfd-50x3 --faults wg-stop
    sudo .venv/bin/python benchmarks/operations.py --quick              # fast-hello + BFD 50x3, wg-stop only

One lab of real hosts (tests/lab/ops_meshes/failover.yaml: hub1 primary at OSPF cost 10, hub2 backup at
100, spokes 1-3, spoke3 NATed) is brought up once; each timer case is the same SoT with other mesh.ospf /
mesh.bfd values, deployed onto the same lab (a timer change on a live mesh is part of what is measured).

Method (same as LAB.md's by-hand figures): inside spoke1, `ping -D -O -i 0.01 -I <spoke1 LAN> <spoke2 LAN>`
(spoke1 -> hub1 -> spoke2), then the primary hub fails: `wg-stop` (all of hub1's WireGuard interfaces
down) or `link-down` (hub1's underlay cable cut). Outage = the largest gap between two received replies
across the fault (ms), and lost packets (each line "no answer yet for icmp_seq=N" never answered). The
fault is then undone; recovery loss = packets lost from that moment until the ping stops, after the route
is back on hub1's tunnel. BFD flaps = BFD session-down events on tunnels NOT to hub1 during the case
(a loaded 2-core machine can delay wireguard-go enough to miss 3 x 50 ms).

All pings run INSIDE lab hosts (LAN to LAN); the root namespace talks to hosts only over management.
Every case is bounded (ping deadline, route wait, verify settle) and the lab is torn down also on failure.
tests/lab/test_operations.py imports this file by path for the same measurement.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mesh_tasks.core.model import load_mesh
from mesh_tasks.core.verification import VerifyReport
from mesh_tasks.lab.lab import Lab
from mesh_tasks.lab.spec import spec_from_mesh
from mesh_tasks.lab.teardown import teardown
from mesh_tasks.workflow import DeployReport, deploy, open_nornir, verify

REPO = Path(__file__).resolve().parents[1]
FAILOVER_SOT = REPO / "tests" / "lab" / "ops_meshes" / "failover.yaml"
INTERVAL = 0.01  # ping interval (s)


# ---- timer variants ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timers:
    name: str
    hello: int
    dead: int
    bfd_ms: int | None = None  # None: BFD off
    bfd_mult: int = 3
    reference: str = ""  # LAB.md's by-hand figure (underlay cut)

    @property
    def label(self) -> str:
        bfd = f", BFD {self.bfd_ms}ms x {self.bfd_mult}" if self.bfd_ms else ", BFD off"
        return f"hello {self.hello} / dead {self.dead}{bfd}"

    @property
    def failover_timeout(self) -> float:
        """How long to wait for traffic to move to the backup before calling it a failure."""
        return self.dead + 15.0

    @property
    def recovery_timeout(self) -> float:
        """How long to wait for the route back to the primary (an adjacency needs a few hellos)."""
        return 4 * self.hello + 20.0


TIMERS: dict[str, Timers] = {
    t.name: t
    for t in (
        Timers("default", 10, 40, reference="37.2 s"),
        Timers("fast-hello", 1, 4, reference="3.35 s"),
        Timers("bfd-100x3", 1, 4, 100, 3, reference="330 ms"),
        Timers("bfd-50x3", 1, 4, 50, 3, reference="168 ms"),
    )
}


def write_variant(dest_dir: Path, timers: Timers, base: Path = FAILOVER_SOT) -> Path:
    """base with timers applied, written as DEST/mesh.yaml (deploy keeps its state beside it)."""
    data = yaml.safe_load(base.read_text())
    data["mesh"]["ospf"].update(hello_interval=timers.hello, dead_interval=timers.dead)
    if timers.name == "default":  # FRR's own defaults throughout, as LAB.md's by-hand figure had them
        data["mesh"]["ospf"].update(
            retransmit_interval=5, lsa_interval_ms=5000, lsa_arrival_ms=1000, spf_throttle_ms=[0, 50, 5000]
        )
    if timers.bfd_ms:
        data["mesh"]["bfd"] = {"enabled": True, "interval_ms": timers.bfd_ms, "multiplier": timers.bfd_mult}
    else:
        data["mesh"]["bfd"] = {"enabled": False}
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / "mesh.yaml"
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


# ---- lab helpers (everything runs inside hosts) --------------------------------------------------------


def up_lab(sot: Path, state_dir: Path, **kwargs: Any) -> Lab:
    kwargs.setdefault("address_range", "auto")
    return Lab.up(spec_from_mesh(load_mesh(sot)), state_dir, **kwargs)


def lan(lab: Lab, node: str) -> str:
    """The node's LAN address: the first host address of its first SoT network."""
    return str(next(iter(ipaddress.ip_network(lab.host(node).networks[0]).hosts())))


def tunnel_to(lab: Lab, node: str, peer: str) -> str:
    """node's WireGuard interface whose peer is `peer` (matched by peer's public key)."""
    keys = {line.split()[1] for line in lab.exec(peer, ["wg", "show", "all", "public-key"]).stdout.splitlines()}
    for line in lab.exec(node, ["wg", "show", "all", "peers"]).stdout.splitlines():
        iface, key = line.split()[:2]
        if key in keys:
            return iface
    raise AssertionError(f"{node} has no WireGuard peer {peer}")


def route_dev(lab: Lab, src: str, dst: str) -> str:
    """The interface src's kernel routes dst's LAN through, from src's LAN address."""
    out = lab.exec(src, ["ip", "-j", "route", "get", lan(lab, dst), "from", lan(lab, src)], timeout=10).stdout
    try:
        return str(json.loads(out)[0].get("dev", ""))
    except (ValueError, IndexError):
        return ""


def wait_for(pred: Callable[[], bool], timeout: float, step: float = 0.1) -> float | None:
    """Seconds until pred() held, or None after timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def bfd_down_events(lab: Lab, node: str) -> dict[str, int]:
    """interface -> BFD session-down events on node (empty if bfdd has no sessions)."""
    out = lab.exec(node, ["vtysh", "-c", "show bfd peers counters json"], timeout=15).stdout
    start = out.find("[")
    try:
        peers = json.loads(out[start:]) if start >= 0 else []
    except ValueError:
        return {}
    return {str(p.get("interface", p.get("peer"))): int(p.get("session-down-events", 0)) for p in peers}


# ---- ping log ----------------------------------------------------------------------------------------

_REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)", re.M)
_NO_ANSWER = re.compile(r"^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)", re.M)


@dataclass
class PingLog:
    """`ping -D -O` output: reply time per answered seq, 'no answer yet' time per unanswered seq."""

    replies: dict[int, float]
    unanswered: dict[int, float]
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> PingLog:
        replies: dict[int, float] = {}
        for ts, seq in _REPLY.findall(text):
            replies.setdefault(int(seq), float(ts))
        unanswered = {int(seq): float(ts) for ts, seq in _NO_ANSWER.findall(text) if int(seq) not in replies}
        return cls(replies, unanswered, text)

    @property
    def sent(self) -> int:
        return max([*self.replies, *self.unanswered], default=0)

    def lost(self, t0: float = 0.0, t1: float = float("inf")) -> list[int]:
        """Unanswered seqs noticed in [t0, t1); packets in flight when ping stopped are not counted."""
        last = max(self.replies, default=0)
        return sorted(s for s, t in self.unanswered.items() if t0 <= t < t1 and s < last)

    def max_gap(self, t0: float = 0.0, t1: float = float("inf")) -> float:
        """Largest time between two consecutive replies whose gap overlaps [t0, t1) (s)."""
        times = sorted(self.replies.values())
        gaps = [b - a for a, b in itertools.pairwise(times) if b > t0 and a < t1]
        return max(gaps, default=0.0)


def start_ping(lab: Lab, src: str, dst: str, deadline: float) -> subprocess.Popen[str]:
    """ping -D -O every 10 ms inside src. Its output goes to a temp file, not a pipe: ~6 KB/s would fill
    a pipe nobody reads in ~10 s and block ping (no packets sent, no loss seen)."""
    argv = [
        "ping",
        "-D",
        "-O",
        "-n",
        "-i",
        str(INTERVAL),
        "-W",
        "1",
        "-w",
        str(int(deadline)),
        "-I",
        lan(lab, src),
        lan(lab, dst),
    ]
    out = tempfile.TemporaryFile(mode="w+", prefix="ops-ping-")  # noqa: SIM115 - closed by stop_ping
    proc = lab.spawn(src, argv, stdout=out, stderr=subprocess.STDOUT)  # nsenter execs ping: PID is ping's
    proc.ping_out = out  # type: ignore[attr-defined]
    return proc


def stop_ping(proc: subprocess.Popen[str]) -> PingLog:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    out = proc.ping_out  # type: ignore[attr-defined]
    out.seek(0)
    text = out.read()
    out.close()
    return PingLog.parse(text)


# ---- deploy / verify ---------------------------------------------------------------------------------


def run_deploy(sot: Path, overlay: Path, settle: float = 60.0) -> DeployReport:
    with open_nornir(sot, overlay) as nr:
        return deploy(nr, settle=settle)


def run_verify(sot: Path, overlay: Path, settle: float = 0.0) -> VerifyReport:
    with open_nornir(sot, overlay) as nr:
        return verify(nr, settle=settle)


def failure_lines(report: VerifyReport | None, limit: int = 20) -> list[str]:
    if report is None:
        return []
    return [f"{c.node} {c.subject} {c.check}: {c.detail}" for c in report.failures[:limit]]


# ---- one failover ------------------------------------------------------------------------------------


@dataclass
class Failover:
    timers: Timers
    fault: str
    sent: int = 0
    lost: int = 0  # during the fault
    gap_s: float = 0.0  # largest reply gap across the fault
    switched_s: float | None = None  # fault -> spoke1's route on the backup tunnel
    recovery_lost: int = 0
    recovery_gap_s: float = 0.0
    back_s: float | None = None  # undo -> spoke1's route back on the primary tunnel
    via: dict[str, str] = field(default_factory=dict)  # before / during / after -> route interface
    tunnels: dict[str, str] = field(default_factory=dict)  # primary / backup -> spoke1's interface
    bfd_flaps: int = 0
    health: dict[str, Any] = field(default_factory=dict)  # verify while the primary is down
    during: VerifyReport | None = None
    after: VerifyReport | None = None
    log: PingLog | None = None

    @property
    def outage_ms(self) -> float:
        return self.gap_s * 1000

    def row(self) -> str:
        switched = f"{self.switched_s:.2f}s" if self.switched_s is not None else "never"
        back = f"{self.back_s:.2f}s" if self.back_s is not None else "never"
        return (
            f"{self.timers.name:<11} {self.fault:<9} {self.outage_ms:>10.0f} {self.lost:>6} "
            f"{self.lost * INTERVAL * 1000:>10.0f} {switched:>9} {back:>9} {self.recovery_lost:>8} "
            f"{self.recovery_gap_s * 1000:>9.0f} {self.bfd_flaps:>5}   {self.timers.reference}"
        )


HEADER = (
    f"{'timers':<11} {'fault':<9} {'outage ms':>10} {'lost':>6} {'lost x10ms':>10} {'switched':>9} "
    f"{'back':>9} {'rec.lost':>8} {'rec.gap':>9} {'flaps':>5}   LAB.md (underlay cut)"
)


def table(rows: list[Failover]) -> str:
    return "\n".join([HEADER, "-" * len(HEADER), *(r.row() for r in rows)])


def _fault(lab: Lab, node: str, fault: str, undo: bool = False) -> None:
    if fault == "wg-stop":
        (lab.wg_start if undo else lab.wg_stop)(node)
    elif fault == "link-down":
        (lab.link_up if undo else lab.link_down)(node)
    else:
        raise ValueError(f"unknown fault {fault!r}")


def measure_failover(
    lab: Lab,
    sot: Path,
    timers: Timers,
    fault: str = "wg-stop",
    *,
    src: str = "spoke1",
    dst: str = "spoke2",
    primary: str = "hub1",
    backup: str = "hub2",
    check_verify: bool = True,
    say: Callable[[str], None] = print,
) -> Failover:
    """Ping src -> dst every 10 ms, fail `primary`, wait for the backup path, (verify), undo, wait for the
    route back on the primary, (verify green). The fault is always undone, also on failure."""
    res = Failover(timers, fault)
    res.tunnels = {"primary": tunnel_to(lab, src, primary), "backup": tunnel_to(lab, src, backup)}
    others = [n for n in lab.nodes if n != primary]
    to_primary = {n: tunnel_to(lab, n, primary) for n in others}
    bfd_before = {n: bfd_down_events(lab, n) for n in others} if timers.bfd_ms else {}
    res.via["before"] = route_dev(lab, src, dst)
    deadline = timers.failover_timeout + timers.recovery_timeout + 120
    proc = start_ping(lab, src, dst, deadline)
    faulted = False
    try:
        time.sleep(2.0)  # baseline through the primary
        t_fault = time.time()
        _fault(lab, primary, fault)
        faulted = True
        say(f"  {timers.name}/{fault}: {primary} failed, waiting for {src}'s route via {backup}")
        res.switched_s = wait_for(lambda: route_dev(lab, src, dst) == res.tunnels["backup"], timers.failover_timeout)
        time.sleep(1.0)  # a second of traffic on the backup path
        res.via["during"] = route_dev(lab, src, dst)
        if check_verify:
            res.during = run_verify(sot, lab.overlay_path, settle=2.0)
            res.health = res.during.health()
            say(f"  verify while {primary} is down: {res.health}")
        t_undo = time.time()
        _fault(lab, primary, fault, undo=True)
        faulted = False
        say(f"  {timers.name}/{fault}: {primary} back, waiting for the route via {primary}")
        res.back_s = wait_for(lambda: route_dev(lab, src, dst) == res.tunnels["primary"], timers.recovery_timeout)
        time.sleep(2.0)  # traffic on the primary again
        res.via["after"] = route_dev(lab, src, dst)
    finally:
        if faulted:
            _fault(lab, primary, fault, undo=True)
        log = stop_ping(proc)
    res.log = log
    res.sent = log.sent
    res.lost = len(log.lost(t_fault, t_undo))
    res.gap_s = log.max_gap(t_fault, t_undo)
    res.recovery_lost = len(log.lost(t_undo))
    res.recovery_gap_s = log.max_gap(t_undo)
    if timers.bfd_ms:
        after = {n: bfd_down_events(lab, n) for n in others}
        res.bfd_flaps = sum(
            count - bfd_before[n].get(iface, 0)
            for n in others
            for iface, count in after[n].items()
            if iface != to_primary[n]
        )
    if check_verify:
        res.after = run_verify(sot, lab.overlay_path, settle=45.0)
        say(f"  verify after {primary} came back: ok={res.after.ok} {failure_lines(res.after, 5)}")
    return res


# ---- key rotation (issue 5) --------------------------------------------------------------------------


def rotate_key_available() -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "mesh_tasks", "rotate-key", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return proc.returncode == 0


def measure_rotation(lab: Lab, sot: Path, node: str, peer: str, say: Callable[[str], None] = print) -> PingLog:
    """ping -i 0.01 from peer to node's LAN while `mesh_tasks rotate-key node` runs."""
    proc = start_ping(lab, peer, node, 300)
    try:
        time.sleep(2.0)
        cmd = [
            sys.executable,
            "-m",
            "mesh_tasks",
            "rotate-key",
            node,
            "--inventory",
            str(sot),
            "--overlay",
            str(lab.overlay_path),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=240)
        say(f"  rotate-key {node}: rc={out.returncode} {out.stdout.strip()[-300:]}")
        time.sleep(2.0)
    finally:
        log = stop_ping(proc)
    return log


def rotation_section(work: Path, say: Callable[[str], None] = print) -> None:
    """PLACEHOLDER until issue 5 lands: key rotation loss per mode (static, ospf)."""
    say("\n== key rotation loss per mode ==")
    if not rotate_key_available():
        say("rotate-key: not measured (see issue 5)")
        return
    base = yaml.safe_load(FAILOVER_SOT.read_text())
    for mode in ("static", "ospf"):
        data = json.loads(json.dumps(base))
        data["mesh"]["routing"] = mode
        data["mesh"]["name"] = f"opsrot{mode[:2]}"
        if mode == "static":  # two hubs with the same summary is the static overlap trap: one hub
            del data["nodes"]["hub2"]
        d = work / f"rotate-{mode}"
        d.mkdir(parents=True, exist_ok=True)
        sot = d / "mesh.yaml"
        sot.write_text(yaml.safe_dump(data, sort_keys=False))
        lab = up_lab(sot, d / "lab")
        try:
            rep = run_deploy(sot, lab.overlay_path)
            if not rep.ok:
                say(f"rotate-key {mode}: deploy failed, not measured")
                continue
            log = measure_rotation(lab, sot, "spoke1", "spoke2", say)
            say(
                f"rotate-key {mode:<6}: {len(log.lost())} of {log.sent} packets lost "
                f"(largest gap {log.max_gap() * 1000:.0f} ms)"
            )
        finally:
            lab.down()
            teardown(d / "lab")


# ---- main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(TIMERS), help=f"comma list of {', '.join(TIMERS)}")
    ap.add_argument("--faults", default="wg-stop,link-down", help="comma list of wg-stop, link-down")
    ap.add_argument("--quick", action="store_true", help="fast-hello and bfd-50x3 with wg-stop only")
    ap.add_argument("--no-verify", action="store_true", help="skip the verify runs around each fault")
    ap.add_argument("--no-rotation", action="store_true", help="skip the key rotation section")
    args = ap.parse_args(argv)
    cases = ["fast-hello", "bfd-50x3"] if args.quick else args.cases.split(",")
    faults = ["wg-stop"] if args.quick else args.faults.split(",")
    unknown = [c for c in cases if c not in TIMERS] + [f for f in faults if f not in ("wg-stop", "link-down")]
    if unknown:
        ap.error(f"unknown case/fault: {', '.join(unknown)}")
    repro = "sudo .venv/bin/python benchmarks/operations.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    print(f"# load average at start: {' '.join(load0)} (2 cores: BFD at 50 ms is sensitive to load)")
    work = Path(tempfile.mkdtemp(prefix="ops-bench-"))
    rows: list[Failover] = []
    t_start = time.monotonic()
    lab: Lab | None = None
    try:
        sot = write_variant(work / "sot", TIMERS[cases[0]])
        t0 = time.monotonic()
        lab = up_lab(sot, work / "lab")
        print(f"lab up: {len(lab.nodes)} hosts in {time.monotonic() - t0:.1f}s")
        for case in cases:
            timers = TIMERS[case]
            sot = write_variant(work / "sot", timers)
            t0 = time.monotonic()
            rep = run_deploy(sot, lab.overlay_path)
            print(
                f"deploy {case} ({timers.label}): ok={rep.ok} changed={len(rep.changed)} {time.monotonic() - t0:.1f}s"
            )
            if not rep.ok:
                print("  " + "\n  ".join(failure_lines(rep.verify)))
                continue
            for fault in faults:
                t0 = time.monotonic()
                res = measure_failover(lab, sot, timers, fault, check_verify=not args.no_verify)
                rows.append(res)
                print(f"  {res.row()}   ({time.monotonic() - t0:.0f}s)")
        print("\n== hub failover: spoke1 -> spoke2 ping every 10 ms, primary hub1 fails ==")
        print(table(rows))
        print(
            "outage ms = largest gap between replies across the fault; lost = unanswered packets; "
            "switched/back = fault/undo -> spoke1's route on the backup/primary tunnel; rec.lost/rec.gap = "
            "packets lost / largest gap after the fault was undone; flaps = BFD down events on other tunnels"
        )
    finally:
        if lab is not None:
            lab.down()
        teardown(work / "lab")
    if not args.no_rotation:
        rotation_section(work)
    shutil.rmtree(work, ignore_errors=True)
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\n# load average at end: {' '.join(load1)}; total {time.monotonic() - t_start:.0f}s")
    print(f"# reproduce: {repro.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
