"""Removing a lab: from its state file, and from the names derived from its state dir when that is partial.

Processes are ended only by PID, taken from `ip netns pids` of the lab's own namespaces. Every step
tolerates "already gone", so `lab down` is idempotent and finishes a crashed `lab up`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mesh_tasks.lab.addressing import lab_id, route_metric
from mesh_tasks.lab.commands import ip_batch, run
from mesh_tasks.lab.host import netns_pids
from mesh_tasks.lab.state import STATE_FILE, LabState

PREFIX = "mtl"


@dataclass(slots=True)
class TeardownReport:
    """What down removed (for the CLI) and what it could not (non-empty means look by hand)."""

    killed: list[int] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _existing_namespaces() -> set[str]:
    proc = run(["ip", "netns", "list"], check=False)
    return {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}


def _existing_links() -> set[str]:
    proc = run(["ip", "-j", "link", "show"], check=False)
    try:
        return {entry["ifname"] for entry in json.loads(proc.stdout or "[]")}
    except (ValueError, KeyError, TypeError):
        return set()


def _lab_blackholes(metric: int) -> list[tuple[str, str]]:
    """(family, prefix) of blackhole routes carrying this lab's metric."""
    found: list[tuple[str, str]] = []
    for family in ("-4", "-6"):
        proc = run(["ip", "-j", family, "route", "show", "type", "blackhole"], check=False)
        try:
            entries = json.loads(proc.stdout or "[]")
        except ValueError:
            continue
        found += [(family, e["dst"]) for e in entries if e.get("metric") == metric and "dst" in e]
    return found


def kill_namespace_processes(namespaces: Iterable[str], report: TeardownReport, grace: float = 3.0) -> None:
    """SIGTERM every process of the namespaces, wait, then SIGKILL what is left; all by PID."""
    namespaces = list(namespaces)
    deadline = time.monotonic() + grace
    sig = signal.SIGTERM
    while True:
        pids = {pid for ns in namespaces for pid in netns_pids(ns)}
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
                if pid not in report.killed:
                    report.killed.append(pid)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            if sig == signal.SIGKILL and time.monotonic() > deadline + 3:
                report.problems.append(f"processes still alive: {sorted(pids)}")
                return
            sig = signal.SIGKILL
        time.sleep(0.05)


def teardown(state_dir: Path, state: LabState | None = None) -> TeardownReport:
    """Remove everything a lab in state_dir may have created; safe to run any number of times."""
    state = state or LabState.load(state_dir)
    lid = (state.lab_id if state and state.lab_id else "") or lab_id(state_dir)
    report = TeardownReport()
    mine = f"{PREFIX}{lid}"

    namespaces = set(state.namespaces if state else [])
    namespaces |= {ns for ns in _existing_namespaces() if ns.startswith((f"{mine}-", f"{mine}r-"))}
    present = _existing_namespaces()
    namespaces &= present
    kill_namespace_processes(sorted(namespaces), report)
    ip_batch([f"netns del {ns}" for ns in sorted(namespaces)], force=True)
    report.namespaces = sorted(namespaces)

    links = set((state.bridges + state.root_links) if state else [])
    existing = _existing_links()
    links |= {name for name in existing if name.startswith(mine)}
    links &= existing
    # Veths first (most vanished with their namespace), bridges last.
    ordered = sorted(links, key=lambda n: (n.endswith(("-mg", "-ul")), n))
    ip_batch([f"link del {name}" for name in ordered], force=True)
    report.links = ordered

    metric = route_metric(lid)
    for family, prefix in _lab_blackholes(metric):
        proc = run(["ip", family, "route", "del", "blackhole", prefix, "metric", str(metric)], check=False)
        if proc.returncode == 0:
            report.routes.append(prefix)
        else:
            report.problems.append(f"route {prefix}: {proc.stderr.strip()}")

    left_ns = namespaces & _existing_namespaces()
    left_links = links & _existing_links()
    if left_ns or left_links:
        report.problems.append(f"still present: namespaces {sorted(left_ns)}, links {sorted(left_links)}")

    if state:
        for path in state.files:
            p = Path(path)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    if not report.problems:
        (state_dir / STATE_FILE).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            state_dir.rmdir()  # only if empty: never remove a directory the user put things in
    return report


def reap(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """Collect exit codes of host processes started by this process (after their namespace emptied)."""
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)
