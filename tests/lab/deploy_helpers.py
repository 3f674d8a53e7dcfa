"""Helpers for tests/lab/test_deploy.py: SoT copies, deploy/verify runs, CLI runs, dataplane pings.

Every ping here runs INSIDE a lab host (Lab.exec / Lab.spawn), from the host's own LAN address to another
node's LAN address; nothing is ever sent to an overlay address from the root namespace.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from mesh_tasks.core.verification import VerifyReport
from mesh_tasks.lab.lab import Lab
from mesh_tasks.workflow import DeployReport, deploy, limit, open_nornir, verify

MESHES = Path(__file__).parent / "meshes"


def copy_sot(tmp_dir: Path, name: str, drop: Iterable[str] = ()) -> Path:
    """meshes/NAME copied as TMP/mesh.yaml (deploy writes its state, rendered files and lock beside it),
    optionally without some nodes (and without the links that name them)."""
    data = yaml.safe_load((MESHES / name).read_text())
    dropped = set(drop)
    for node in dropped:
        del data["nodes"][node]
    if "links" in data:
        data["links"] = [link for link in data["links"] if not dropped & set(link)]
    dest = tmp_dir / "mesh.yaml"
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def write_overlay(lab: Lab, dest: Path, drop: Iterable[str] = (), endpoints: dict[str, str] | None = None) -> Path:
    """The lab's overlay, without some nodes and/or with some endpoint hosts replaced."""
    data = yaml.safe_load(lab.overlay_path.read_text())
    for node in drop:
        del data["nodes"][node]
    for node, host in (endpoints or {}).items():
        data["nodes"][node]["endpoint_host"] = host
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def run_deploy(sot: Path, overlay: Path, **kwargs: Any) -> DeployReport:
    with open_nornir(sot, overlay) as nr:
        return deploy(nr, **kwargs)


def run_verify(sot: Path, overlay: Path, settle: float = 0.0, only: list[str] | None = None) -> VerifyReport:
    with open_nornir(sot, overlay) as nr:
        return verify(limit(nr, only), settle=settle)


def failures(report: VerifyReport | None) -> list[str]:
    if report is None:
        return []
    return [f"{c.node} {c.subject} {c.check}: {c.detail}" for c in report.failures]


def describe(report: DeployReport) -> str:
    """One line per host plus the verify failures, for assertion messages and -s output."""
    lines = [
        f"deploy ok={report.ok} changed={sorted(report.changed)} {report.seconds:.1f}s phases="
        + ", ".join(f"{k} {v:.1f}s" for k, v in report.phases.items())
    ]
    for h in report.hosts.values():
        lines.append(
            f"  {h.node}: ok={h.ok} changed={h.changed} rolled_back={h.rolled_back} "
            f"actions={h.actions} error={h.error[:300]!r}"
        )
    lines += [f"  verify: {f}" for f in failures(report.verify)[:20]]
    lines += [f"  after rollback: {f}" for f in failures(report.after_rollback)[:20]]
    return "\n".join(lines)


def cli(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
    """`python -m mesh_tasks ARGS` with a wide terminal (no wrapped messages)."""
    env = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mesh_tasks", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def lan(lab: Lab, node: str) -> str:
    """The node's LAN address: first host address of its first SoT network."""
    net = ipaddress.ip_network(lab.host(node).networks[0])
    return str(next(iter(net.hosts())))


def _ping_from(lab: Lab, src: str, targets: dict[str, str]) -> dict[str, bool]:
    own = lan(lab, src)
    script = (
        " ".join(
            f"(ping -c1 -W2 -I {own} {addr} >/dev/null 2>&1 && echo ok {node} || echo FAIL {node}) &"
            for node, addr in targets.items()
        )
        + " wait"
    )
    out = lab.exec(src, script, timeout=30).stdout.split()
    result = {node: False for node in targets}
    for verdict, node in zip(out[::2], out[1::2], strict=False):
        result[node] = verdict == "ok"
    return result


def ping_matrix(lab: Lab, nodes: list[str]) -> list[tuple[str, str]]:
    """From inside every node, ping every other node's LAN address from the own LAN address.

    Returns the failed (source, destination) pairs (empty: full reachability)."""
    addrs = {n: lan(lab, n) for n in nodes}

    def one(src: str) -> list[tuple[str, str]]:
        res = _ping_from(lab, src, {n: a for n, a in addrs.items() if n != src})
        return [(src, dst) for dst, ok in res.items() if not ok]

    with ThreadPoolExecutor(len(nodes)) as pool:
        return [pair for pairs in pool.map(one, nodes) for pair in pairs]


def lost_packets(ping_output: str) -> tuple[int, int, list[int]]:
    """(sent, received, missing sequence numbers) of a `ping` run stopped with SIGINT.

    A packet still in flight when ping was stopped is not counted as lost: only sequence numbers below
    the highest one answered count."""
    seqs = sorted({int(m) for m in re.findall(r"bytes from .*icmp_seq=(\d+)", ping_output)})
    sent = re.search(r"(\d+) packets transmitted, (\d+) received", ping_output)
    tx, rx = (int(sent.group(1)), int(sent.group(2))) if sent else (0, len(seqs))
    if not seqs:
        return tx, rx, []
    have = set(seqs)
    missing = [s for s in range(1, seqs[-1] + 1) if s not in have]
    return tx, rx, missing


def wg_links(lab: Lab, node: str) -> dict[str, int]:
    """WireGuard interface name -> ifindex on node (an interface re-created gets a new index)."""
    names = lab.exec(node, ["wg", "show", "interfaces"], check=True).stdout.split()
    out = {}
    for name in names:
        text = lab.exec(node, ["cat", f"/sys/class/net/{name}/ifindex"]).stdout.strip()
        out[name] = int(text) if text.isdigit() else -1
    return out


def seed_key(lab: Lab, node: str, *, slash: bool) -> str:
    """Give node a WireGuard key made ON the node (as deploy would), chosen so that its public key does
    (slash=True) or does not contain a '/'. deploy keeps an existing key. Returns the public key.

    Keys are random; a '/' in a public key trips the static-mode route sync (see test_deploy.py), so the
    tests pick keys to be deterministic instead of failing about half the time."""
    case = "*/*) ;; *) continue ;;" if slash else "*/*) continue ;;"
    script = (
        "umask 077; mkdir -p /etc/wireguard; "
        'for i in $(seq 200); do k=$(wg genkey); p=$(printf %s "$k" | wg pubkey); '
        f"case $p in {case} esac; printf '%s\\n' \"$k\" > /etc/wireguard/private.key; echo $p; exit 0; "
        "done; exit 1"
    )
    pub = lab.exec(node, script, check=True).stdout.strip()
    assert ("/" in pub) is slash, pub
    return pub
