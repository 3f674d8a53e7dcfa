"""Checks that keep a lab from touching the real network, run before anything is created.

A lab bridge inside a range the machine already routes (its uplink!) would send lab traffic to a real
gateway, and a blackhole over a real route would cut the machine off. So `lab up` refuses both, under a
lock so two labs starting at once cannot both pass the check for the same range.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mesh_tasks.lab.commands import run
from mesh_tasks.lab.errors import LabPreflightError, LabRangeError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

REQUIRED_BINARIES = (
    "ip",
    "nsenter",
    "unshare",
    "nft",
    "sysctl",
    "ssh",
    "ssh-keygen",
    "wg",
    "wireguard-go",
    "vtysh",
)
REQUIRED_FILES = ("/usr/sbin/sshd", "/usr/lib/frr/frrinit.sh", "/usr/lib/frr/frr-reload.py", "/etc/frr/daemons")
LOCK_FILE = Path("/run/lock/mesh_tasks-lab.lock")


def preflight() -> None:
    """Fail early and clearly when this machine cannot host a lab (setup.sh installs what is missing)."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("the lab needs root (network namespaces, bridges, mounts)")
    problems += [f"missing binary {b!r}" for b in REQUIRED_BINARIES if shutil.which(b) is None]
    problems += [f"missing {f}" for f in REQUIRED_FILES if not Path(f).exists()]
    if problems:
        raise LabPreflightError("cannot run a lab here: " + "; ".join(problems) + " (run scripts/setup.sh as root)")


@dataclass(frozen=True, slots=True)
class RootRoute:
    """One route of the root namespace's main table, as far as the overlap checks need."""

    prefix: IPNetwork
    kind: str  # "unicast", "blackhole", ...
    text: str


def root_routes() -> list[RootRoute]:
    """The root namespace's IPv4 and IPv6 routes (`ip -j route`, `ip -j -6 route`)."""
    routes: list[RootRoute] = []
    for family in ("-4", "-6"):
        proc = run(["ip", "-j", family, "route", "show", "table", "main"])
        for entry in json.loads(proc.stdout or "[]"):
            dst = entry.get("dst", "")
            if dst == "default":
                dst = "0.0.0.0/0" if family == "-4" else "::/0"
            try:
                prefix = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            kind = entry.get("type", "unicast")
            text = f"{kind + ' ' if kind != 'unicast' else ''}{dst}" + (
                f" dev {entry['dev']}" if "dev" in entry else ""
            )
            routes.append(RootRoute(prefix=prefix, kind=kind, text=text))
    return routes


def check_lab_range(
    address_range: ipaddress.IPv4Network, overlay: Sequence[IPNetwork], routes: Sequence[RootRoute]
) -> None:
    """Refuse a range that overlaps any non-default root route, and overlay prefixes that would shadow one.

    Default routes overlap everything and are ignored; other labs' blackholes may share overlay prefixes.
    """
    problems: list[str] = []
    specific = [r for r in routes if r.prefix.prefixlen > 0]
    for r in specific:
        if r.prefix.version == 4 and r.prefix.overlaps(address_range):
            problems.append(f"lab range {address_range} overlaps the root namespace's route {r.text!r}")
    for prefix in overlay:
        if prefix.version == 4 and prefix.overlaps(address_range):
            problems.append(f"overlay prefix {prefix} overlaps the lab range {address_range}")
        for r in specific:
            if r.kind != "blackhole" and r.prefix.version == prefix.version and r.prefix.overlaps(prefix):
                problems.append(
                    f"overlay prefix {prefix} overlaps the root namespace's route {r.text!r}: "
                    "blackholing it would cut that route"
                )
        if prefix.prefixlen == 0:
            problems.append(f"overlay prefix {prefix} would blackhole everything")
    if problems:
        raise LabRangeError(
            "refusing to start the lab, nothing was created: "
            + "; ".join(problems)
            + " (choose another range with --range)"
        )


_BENCHMARK_RANGE = ipaddress.IPv4Network("198.18.0.0/15")


def free_range(within: ipaddress.IPv4Network = _BENCHMARK_RANGE, prefixlen: int = 20) -> ipaddress.IPv4Network:
    """The first block of `within` that no root route touches: lets tests run beside other labs."""
    routes = [r for r in root_routes() if r.prefix.prefixlen > 0 and r.prefix.version == 4]
    for block in within.subnets(new_prefix=prefixlen):
        if not any(r.prefix.overlaps(block) for r in routes):
            return block
    raise LabRangeError(f"no free /{prefixlen} left in {within}")


@contextlib.contextmanager
def creation_lock() -> Iterator[None]:
    """Serialise "check routes, then claim the range" across processes on this machine."""
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOCK_FILE.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
