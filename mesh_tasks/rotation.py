"""Key rotation in the safe order, resumable from the state file.

    1. prepare   the node makes its next key pair (private.key.next, 0600); only the public key comes back
    2. announce  every peer adds the new public key as a second peer entry, without AllowedIPs yet
    3. switch    in ONE parallel run, at one agreed instant by the hosts' clocks: the node switches to the
                 new key and every peer moves the node's AllowedIPs from the old entry to the new one,
                 removing the old (the outage is their skew)
    4. finalize  a normal deploy writes the files with the new key everywhere and verifies, so nothing of
                 the old key survives on any host (verify flags any unplanned peer)

Why not make-before-break with a second tunnel in the routed mode: with the new key pre-announced, the
switch loses nothing measurable at a 10 ms ping in either mode (benchmarks/operations.py), and the same
order serves both modes without a second set of interfaces, ports and OSPF adjacencies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nornir.core import Nornir

from mesh_tasks.core.state import load_state, save_state, state_path
from mesh_tasks.tasks.keys import announce_key, prepare_next_key, switch_key
from mesh_tasks.workflow import DeployReport, Progress, current_plan, deploy_lock, deploy_locked, error_text, run_phase

SWITCH_LEAD = 0.5  # s between sending the switch and the instant every host carries it out


class RotationError(Exception):
    pass


@dataclass
class RotationReport:
    node: str
    old_key: str
    new_key: str
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    deploy: DeployReport | None = None

    @property
    def ok(self) -> bool:
        return self.deploy is not None and self.deploy.ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "ok": self.ok,
            "old_public_key": self.old_key,
            "new_public_key": self.new_key,
            "steps": {k: round(v, 3) for k, v in self.steps.items()},
            "deploy": self.deploy.as_dict() if self.deploy else None,
        }


def _check(results: Any, step: str) -> None:
    failed = {name: error_text(r) for name, r in results.items() if r.failed}
    if failed:
        raise RotationError(
            f"{step} failed on {', '.join(f'{n}: {e}' for n, e in failed.items())}; "
            "run rotate-key again to resume (each step is idempotent)"
        )


def rotate_key(nr: Nornir, node: str, *, settle: float = 60.0, progress: Progress | None = None) -> RotationReport:
    source = Path(nr.inventory.defaults.data["source"])
    with deploy_lock(source):
        plan = current_plan(nr)
        state = plan.state
        if node not in plan.mesh.nodes:
            raise RotationError(f"{node} is not a node of {source}")
        old = state.public_keys.get(node)
        if not old:
            raise RotationError(f"{node} has no deployed key yet: deploy first")
        node_plan = plan.node(node)
        peers = {p.node for _, p in node_plan.peers()}
        on_node = nr.filter(name=node)
        steps: dict[str, float] = {}

        started = time.monotonic()
        prepared = run_phase(on_node, progress, f"prepare a new key on {node}", prepare_next_key)
        _check(prepared, "prepare")
        current, new = prepared[node][0].result
        steps["prepare"] = time.monotonic() - started
        rotation = state.rotations.get(node, {})
        if current == rotation.get("new"):  # an interrupted run already switched the node
            new = current
        elif current != old:
            raise RotationError(f"{node}'s key on the host is not the one in {state_path(source)}: deploy first")
        state.rotations[node] = {"old": old, "new": new, "phase": "prepared"}
        save_state(state_path(source), state)
        assert new is not None

        entries: dict[str, list[tuple[str, str, str | None, int | None]]] = {p: [] for p in peers}
        moves: dict[str, list[tuple[str, str, str, tuple[str, ...]]]] = {p: [] for p in peers}
        for peer in peers:
            for iface, entry in plan.node(peer).peers():
                if entry.node == node:
                    entries[peer].append((iface.name, new, entry.endpoint, entry.keepalive))
                    moves[peer].append((iface.name, old, new, entry.allowed_ips))
        on_peers = nr.filter(filter_func=lambda h: h.name in peers)
        if new != current:
            started = time.monotonic()
            _check(
                run_phase(on_peers, progress, "announce the new key to the peers", announce_key, entries=entries),
                "announce",
            )
            steps["announce"] = time.monotonic() - started
            state.rotations[node]["phase"] = "announced"
            save_state(state_path(source), state)

            started = time.monotonic()
            both = nr.filter(filter_func=lambda h: h.name in peers or h.name == node)
            interfaces = [i.name for i in node_plan.interfaces]
            at = time.time() + SWITCH_LEAD  # connections are open: every command arrives well before this
            _check(run_phase(both, progress, "switch", switch_key, interfaces=interfaces, moves=moves, at=at), "switch")
            steps["switch"] = time.monotonic() - started
        state.public_keys[node] = new
        state.rotations[node]["phase"] = "switched"
        save_state(state_path(source), state)

        started = time.monotonic()
        report = deploy_locked(nr, rollback=False, settle=settle, progress=progress)
        steps["finalize (deploy + verify)"] = time.monotonic() - started
        state = load_state(state_path(source))
        state.rotations.pop(node, None)
        save_state(state_path(source), state)
        return RotationReport(node, old, new, steps, report)
