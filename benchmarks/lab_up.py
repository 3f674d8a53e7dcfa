"""Time and memory of `lab up` / `lab down` for 6, 12 and 24 hosts (synthetic hub-and-spoke specs).

    sudo .venv/bin/python benchmarks/lab_up.py            # 6, 12, 24 hosts
    sudo .venv/bin/python benchmarks/lab_up.py --sizes 24 --repeat 3

Memory: whole-machine used memory (MemTotal - MemAvailable, /proc/meminfo) before and after `up`, and the
summed RSS of every process in the lab's namespaces. Each lab is torn down before the next, also on failure.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from mesh_tasks.lab.host import netns_pids
from mesh_tasks.lab.lab import Lab
from mesh_tasks.lab.spec import synthetic_spec
from mesh_tasks.lab.teardown import teardown


def used_mib() -> float:
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        info[key] = int(value.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) / 1024


def rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@dataclass
class Row:
    hosts: int
    nat: int
    up_s: float
    down_s: float
    used_delta_mib: float
    rss_mib: float
    processes: int


def measure(hosts: int, nat: int) -> Row:
    spec = synthetic_spec(hosts, hubs=2, nat=nat)
    state_dir = Path(tempfile.mkdtemp(prefix=f"lab-bench-{hosts}-"))
    try:
        time.sleep(0.5)
        before = used_mib()
        t0 = time.monotonic()
        lab = Lab.up(spec, state_dir, address_range="auto")  # beside any other lab on this machine
        up_s = time.monotonic() - t0
        time.sleep(0.5)  # let FRR finish its start-up allocations
        used = used_mib() - before
        pids = [pid for ns in lab.state.namespaces for pid in netns_pids(ns)]
        rss = rss_mib(pids)
        t0 = time.monotonic()
        report = lab.down()
        down_s = time.monotonic() - t0
        if report.problems:
            raise RuntimeError(f"down left problems: {report.problems}")
        return Row(hosts, nat, up_s, down_s, used, rss, len(pids))
    finally:
        teardown(state_dir)  # no-op after a clean down; the safety net otherwise
        shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[6, 12, 24])
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (bounded to 5)")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    for size in args.sizes:
        for _ in range(max(1, min(args.repeat, 5))):
            rows.append(measure(size, nat=1 if size < 12 else 2))
            r = rows[-1]
            print(f"  {r.hosts} hosts: up {r.up_s:.2f}s, down {r.down_s:.2f}s", file=sys.stderr)
    print(f"{'hosts':>5} {'nat':>3} {'up s':>6} {'down s':>6} {'used MiB':>9} {'lab RSS MiB':>11} {'procs':>5}")
    for r in rows:
        print(
            f"{r.hosts:>5} {r.nat:>3} {r.up_s:>6.2f} {r.down_s:>6.2f} {r.used_delta_mib:>9.0f} "
            f"{r.rss_mib:>11.0f} {r.processes:>5}"
        )
    sizes = " ".join(str(s) for s in args.sizes)
    print(f"\nreproduce: sudo .venv/bin/python benchmarks/lab_up.py --sizes {sizes} --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
