"""deploy -> verified, verify-only and no-op redeploy on labs of 6, 12 and 24 real hosts, parallel vs one
worker in the same run (issue 4's acceptance figures).

    sudo .venv/bin/python benchmarks/deploy_scale.py                  # 6, 12, 24 hosts, routed (OSPF)
    sudo .venv/bin/python benchmarks/deploy_scale.py --sizes 24 --routing static
    sudo .venv/bin/python benchmarks/deploy_scale.py --sizes 24 --bfd --parallel-workers 6

Each size gets a fresh lab per worker setting (a first deploy must start from bare hosts): two hubs,
the rest spokes, one spoke NATed. Every step opens its own Nornir (new SSH connections), as a user's
separate `deploy` / `verify` commands would.

All lab hosts share this machine's cores, so the benchmark also reports the CPU the first deploy cost
(controller, hosts, their daemons) and the speedup ceiling that follows from it.

BFD is off by default here. With BFD 100 ms x 3 on 24 hosts (45 tunnels, 90 userspace wireguard-go
processes) the steady state alone takes one of the 2 cores (wireguard-go 0.7, bfdd 0.44); a simultaneous
bring-up of all 24 saturates both, BFD sessions flap and OSPF needs ~2 minutes to settle, while 6 workers
converge in ~28 s. Failover with BFD is measured on a smaller lab in benchmarks/operations.py.

"deploy -> verified" is the whole `deploy` (gather, render, push/apply, then verify polling until every
check is green: OSPF convergence is part of it). The lab is torn down after each case, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from mesh_tasks.lab.lab import Lab
from mesh_tasks.lab.spec import synthetic_spec
from mesh_tasks.workflow import deploy, open_nornir, verify

TARGETS = "at 24 nodes: parallel >= 5x faster than one worker; no-op redeploy <= half the first deploy; verify <= 10 s"


def mesh_for(hosts: int, routing: str, bfd: bool = False) -> dict[str, Any]:
    """The SoT of synthetic_spec(hosts): same names, networks and NAT; placeholder SSH targets/endpoints."""
    spec = synthetic_spec(hosts)
    nodes: dict[str, Any] = {}
    for i, node in enumerate(spec.nodes):
        nodes[node.name] = {
            "role": node.role,
            "management": f"203.0.113.{i + 1}",
            "endpoint": None if node.nat else f"203.0.113.{i + 1}",
            "nat": node.nat,
            "networks": [str(n) for n in node.networks],
            **({"ospf_cost": 10 if node.name == "hub1" else 100} if node.role == "hub" else {}),
        }
    return {
        "mesh": {
            "name": f"bench{hosts}",
            "routing": routing,
            "topology": "hub-and-spoke",
            "ospf": {"hello_interval": 1, "dead_interval": 4},
            "bfd": {"enabled": bfd, "interval_ms": 100, "multiplier": 3},
        },
        "nodes": nodes,
    }


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy so far (every lab host shares this machine's cores)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Case:
    hosts: int
    workers: int
    deploy_s: float
    deploy_cpu_s: float  # CPU the first deploy cost the machine: controller, every lab host, their daemons
    phases: dict[str, float]
    verify_s: float
    noop_s: float
    noop_changed: int
    ok: bool
    reannounced: int  # addresses apply.sh had to announce to zebra again (it missed them under load)


def run_case(hosts: int, workers: int, routing: str, bfd: bool) -> Case:
    with tempfile.TemporaryDirectory(prefix="deploy_scale-") as tmp:
        sot = Path(tmp) / "mesh.yaml"
        sot.write_text(yaml.safe_dump(mesh_for(hosts, routing, bfd), sort_keys=False))
        lab = Lab.up(synthetic_spec(hosts), Path(tmp) / "lab", address_range="auto")
        try:
            # Each step as a user runs it: a new process state, so SSH connections are set up again.
            started, cpu_started = time.monotonic(), busy_cpu_seconds()
            with open_nornir(sot, lab.overlay_path, workers=workers) as nr:
                first = deploy(nr, settle=120)
            deploy_s, deploy_cpu_s = time.monotonic() - started, busy_cpu_seconds() - cpu_started
            started = time.monotonic()
            with open_nornir(sot, lab.overlay_path, workers=workers) as nr:
                checked = verify(nr)
            verify_s = time.monotonic() - started
            started = time.monotonic()
            with open_nornir(sot, lab.overlay_path, workers=workers) as nr:
                again = deploy(nr)
            noop_s = time.monotonic() - started
            ok = first.ok and checked.ok and again.ok
            phases = {k: round(v, 2) for k, v in first.phases.items()}
            reannounced = sum(a.startswith("re-announced") for h in first.hosts.values() for a in h.actions)
            return Case(
                hosts, workers, deploy_s, deploy_cpu_s, phases, verify_s, noop_s, len(again.changed), ok, reannounced
            )
        finally:
            lab.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 12, 24])
    parser.add_argument("--routing", choices=["ospf", "static"], default="ospf")
    parser.add_argument("--parallel-workers", type=int, default=32)
    parser.add_argument("--bfd", action="store_true", help="BFD 100 ms x 3 on every tunnel (see the module doc)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("deploy_scale: run as root (the lab needs namespaces)", file=sys.stderr)
        return 2
    cases: list[Case] = []
    for hosts in args.sizes:
        for workers in (args.parallel_workers, 1):
            case = run_case(hosts, workers, args.routing, args.bfd)
            cases.append(case)
            print(
                f"  {hosts} hosts, {workers} worker(s): deploy->verified {case.deploy_s:.1f} s "
                f"({case.deploy_cpu_s:.1f} CPU-s) {case.phases}, "
                f"verify {case.verify_s:.1f} s, no-op {case.noop_s:.1f} s (changed={case.noop_changed}), "
                f"ok={case.ok}, addresses re-announced to zebra: {case.reannounced}",
                file=sys.stderr,
                flush=True,
            )
    if args.json:
        print(json.dumps([asdict(c) for c in cases], indent=1))
        return 0
    print(
        f"\n{'hosts':>5} {'workers':>7} {'deploy->verified s':>18} {'gather s':>8} {'push s':>7} "
        f"{'verify(in deploy) s':>19} {'verify-only s':>13} {'no-op s':>7} {'no-op/first':>11} {'ok':>3}"
    )
    for c in cases:
        print(
            f"{c.hosts:>5} {c.workers:>7} {c.deploy_s:>18.1f} {c.phases.get('gather keys and files', 0):>8.1f} "
            f"{c.phases.get('push and apply', 0):>7.1f} {c.phases.get('verify', 0):>19.1f} {c.verify_s:>13.1f} "
            f"{c.noop_s:>7.1f} {c.noop_s / c.deploy_s:>11.2f} {'yes' if c.ok else 'NO':>3}"
        )
    cores = os.cpu_count() or 1
    print("\nparallel vs one worker (same size, same run):")
    for hosts in args.sizes:
        par = next(c for c in cases if c.hosts == hosts and c.workers != 1)
        one = next(c for c in cases if c.hosts == hosts and c.workers == 1)
        push_par = par.phases.get("gather keys and files", 0) + par.phases.get("push and apply", 0)
        push_one = one.phases.get("gather keys and files", 0) + one.phases.get("push and apply", 0)
        floor = par.deploy_cpu_s / cores
        print(
            f"  {hosts:>2} hosts: deploy->verified {one.deploy_s / par.deploy_s:.1f}x, "
            f"gather+push {push_one / max(push_par, 1e-9):.1f}x, verify-only {one.verify_s / par.verify_s:.1f}x; "
            f"the parallel deploy used {par.deploy_cpu_s:.1f} CPU-s = {floor:.1f} s of this machine's {cores} "
            f"cores: that work cannot finish faster here, which caps the speedup near "
            f"{one.deploy_s / floor:.1f}x"
        )
    print(f"\ntargets ({TARGETS})")
    if 24 in args.sizes:
        par = next(c for c in cases if c.hosts == 24 and c.workers != 1)
        one = next(c for c in cases if c.hosts == 24 and c.workers == 1)
        speedup_ok = one.deploy_s >= 5 * par.deploy_s
        print(f"  parallel {one.deploy_s / par.deploy_s:.1f}x faster: {'PASS' if speedup_ok else 'MISS'}")
        noop_ok = par.noop_s <= par.deploy_s / 2
        print(f"  no-op {par.noop_s:.1f} s vs first {par.deploy_s:.1f} s: {'PASS' if noop_ok else 'MISS'}")
        print(f"  verify {par.verify_s:.1f} s: {'PASS' if par.verify_s <= 10 else 'MISS'}")
    print(
        f"\nreproduce: sudo .venv/bin/python benchmarks/deploy_scale.py --sizes {' '.join(map(str, args.sizes))} "
        f"--routing {args.routing}{' --bfd' if args.bfd else ''}"
        f"{f' --parallel-workers {args.parallel_workers}' if args.parallel_workers != 32 else ''}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
