"""Nornir tasks for key rotation, in the safe order (see mesh_tasks.rotation).

The new private key is made on the node next to the current one (private.key.next, 0600) and never
leaves it; only public keys travel. Each step is idempotent so an interrupted rotation can be re-run.
"""

from __future__ import annotations

import shlex

from nornir.core.task import Result, Task

from mesh_tasks.core.render import PRIVATE_KEY
from mesh_tasks.tasks.remote import run_one

NEXT_KEY = f"{PRIVATE_KEY}.next"


def prepare_next_key(task: Task, create: bool = True) -> Result:
    """Make (or keep) the node's next key pair. Result: (current public key, next public key or None).

    The current key is untouched, so after an interrupted switch a re-run sees current == new and goes on.
    """
    make = f"[ -s {NEXT_KEY} ] || {{ wg genkey > {NEXT_KEY}.tmp && mv {NEXT_KEY}.tmp {NEXT_KEY}; }}; " if create else ""
    keys = run_one(
        task,
        "next_key",
        f"umask 077; {make}wg pubkey < {PRIVATE_KEY}; if [ -s {NEXT_KEY} ]; then wg pubkey < {NEXT_KEY}; fi",
    ).split()
    return Result(host=task.host, result=(keys[0], keys[1] if len(keys) > 1 else None), changed=create)


def announce_key(task: Task, entries: dict[str, list[tuple[str, str, str | None, int | None]]]) -> Result:
    """On a peer: add the node's new public key as a second peer with no AllowedIPs yet, so the node's
    first handshake with the new key is accepted the moment it switches (no 5 s retry)."""
    commands = []
    for iface, new_key, endpoint, keepalive in entries[task.host.name]:
        extra = (f" endpoint {shlex.quote(endpoint)}" if endpoint else "") + (
            f" persistent-keepalive {keepalive}" if keepalive else ""
        )
        commands.append(f"wg set {iface} peer {new_key}{extra}")
    run_one(task, "announce", " && ".join(commands))
    return Result(host=task.host, changed=True)


def wait_until(at: float, longest: float = 2.0) -> str:
    """Shell that sleeps until epoch time `at` by the host's own clock (at most `longest` s, none if late)."""
    return (
        f'sleep $(awk -v at={at:.3f} -v now="$(date +%s.%N)" '
        f"'BEGIN {{ d = at - now; if (d > {longest}) d = {longest}; if (d < 0) d = 0; printf \"%.3f\", d }}')"
    )


def switch_key(
    task: Task,
    interfaces: list[str],
    moves: dict[str, list[tuple[str, str, str, tuple[str, ...]]]],
    at: float | None = None,
) -> Result:
    """The switch, run on the node and its peers in the same parallel run so the skew is minimal.

    Node (`interfaces`): the next key becomes the key, on every interface. Peers (`moves`): the node's
    AllowedIPs move from its old to its new peer entry and the old entry goes, in one `wg set`.
    `at` (epoch seconds): every host acts at that instant by its own clock instead of whenever its SSH
    command arrives; the traffic lost is the skew between the node and its peers (LAB.md), and
    NTP-synced clocks agree far better than parallel SSH sessions do.
    """
    if task.host.name in moves:
        commands = [
            f"wg set {iface} peer {old} remove peer {new} allowed-ips {','.join(allowed)}"
            for iface, old, new, allowed in moves[task.host.name]
        ]
    else:
        sets = "; ".join(f"wg set {i} private-key {PRIVATE_KEY}" for i in interfaces)
        commands = [f"if [ -s {NEXT_KEY} ]; then mv {NEXT_KEY} {PRIVATE_KEY}; fi", sets or "true"]
    if at is not None:
        commands.insert(0, wait_until(at))
    run_one(task, "switch", " && ".join(commands))
    return Result(host=task.host, changed=True)
