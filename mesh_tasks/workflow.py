"""deploy and verify: the Nornir tasks composed into the main job, with a confirmed-commit rollback.

    with open_nornir("inventory/mesh.yaml") as nr:
        report = deploy(nr)            # gather -> render -> push/apply -> verify (-> roll back)
        status = verify(nr)

Results are values (DeployReport, VerifyReport); the CLI shows them. A host that fails is reported and
skipped; the rest of the mesh goes on. Only hosts changed in this run are ever rolled back.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nornir import InitNornir
from nornir.core import Nornir
from nornir.core.task import AggregatedResult, Result, Task

from mesh_tasks.core.diff import rendered_dir, write_tree
from mesh_tasks.core.plan import MeshPlan, NodePlan, with_known_peers
from mesh_tasks.core.render import render_node
from mesh_tasks.core.state import load_state, save_state, state_path
from mesh_tasks.core.verification import NodeCheck, VerifyReport, evaluate, expectations
from mesh_tasks.inventory import PLUGIN_NAME, register
from mesh_tasks.tasks.configs import NodeFacts, gather_node, push_configs
from mesh_tasks.tasks.status import collect_status

Progress = Callable[[str, Nornir], Any]  # (phase title, nornir about to run) -> processor list or None


class DeployLocked(Exception):
    """Another deploy holds the lock of this source of truth."""


def open_nornir(source: str | Path, overlay: str | Path | None = None, workers: int = 32) -> Nornir:
    # Failures are reported as values per host; keep nornir's tracebacks off the user's terminal.
    logging.getLogger("nornir").addHandler(logging.NullHandler())
    register()
    options: dict[str, Any] = {"source": str(source)}
    if overlay:
        options["overlay"] = str(overlay)
    return InitNornir(
        runner={"plugin": "threaded", "options": {"num_workers": max(1, workers)}},
        inventory={"plugin": PLUGIN_NAME, "options": options},
        logging={"enabled": False},
    )


def limit(nr: Nornir, names: list[str] | None) -> Nornir:
    """Hosts named, or in the groups named (hubs, spokes). Plans stay whole: peers outside stay peers."""
    if not names:
        return nr
    wanted = set(names)
    unknown = wanted - set(nr.inventory.hosts) - set(nr.inventory.groups)
    if unknown:
        raise KeyError(f"--limit: no host or group named {', '.join(sorted(unknown))}")
    return nr.filter(filter_func=lambda h: h.name in wanted or any(h.has_parent_group(g) for g in wanted))


@contextmanager
def deploy_lock(source: Path) -> Iterator[None]:
    """One deploy per source of truth at a time: a second one is refused, not queued."""
    path = source.with_name(f".{source.stem}.deploy.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise DeployLocked(
                f"another deploy of {source} is running (pid {holder}); try again when it ends"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


@dataclass
class HostOutcome:
    node: str
    ok: bool = True
    changed: bool = False
    actions: list[str] = field(default_factory=list)
    diff: str = ""
    error: str = ""
    rolled_back: bool = False

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class DeployReport:
    dry_run: bool
    hosts: dict[str, HostOutcome]
    verify: VerifyReport | None = None
    after_rollback: VerifyReport | None = None
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # phase title -> seconds

    @property
    def changed(self) -> list[str]:
        return [h.node for h in self.hosts.values() if h.changed]

    @property
    def ok(self) -> bool:
        hosts_ok = all(h.ok for h in self.hosts.values())
        return (
            hosts_ok and (self.verify is None or self.verify.ok) and not any(h.rolled_back for h in self.hosts.values())
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dry_run": self.dry_run,
            "changed": self.changed,
            "seconds": round(self.seconds, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "hosts": {n: h.as_dict() for n, h in self.hosts.items()},
            "verify": self.verify.as_dict() if self.verify else None,
            "after_rollback": self.after_rollback.as_dict() if self.after_rollback else None,
        }


def error_text(result: Any) -> str:
    exc = getattr(result[0], "exception", None) if len(result) else None
    return str(exc) if exc is not None else str(result[0].result if len(result) else "failed")


def run_phase(
    nr: Nornir,
    progress: Progress | None,
    title: str,
    task: Callable[..., Result],
    timings: dict[str, float] | None = None,
    **kwargs: Any,
) -> AggregatedResult:
    """nr.run with an optional progress display; failed hosts are reset so later phases still run them."""
    processors = progress(title, nr) if progress else None
    runner = nr.with_processors(processors) if processors else nr
    started = time.monotonic()
    result = runner.run(task=task, name=title, raise_on_error=False, **kwargs)
    if timings is not None:
        timings[title] = timings.get(title, 0.0) + time.monotonic() - started
    nr.data.reset_failed_hosts()
    return result


def _push_planned(task: Task, desired: dict[str, dict[str, str]], current: dict[str, dict[str, str]]) -> Result:
    return push_configs(task, files=desired[task.host.name], current=current.get(task.host.name, {}))


def current_plan(nr: Nornir) -> MeshPlan:
    """The mesh with the state on disk, not the one read at inventory load: a rotation may have moved on."""
    source = Path(nr.inventory.defaults.data["source"])
    return MeshPlan(nr.inventory.defaults.data["mesh_plan"].mesh, load_state(state_path(source)))


def deploy(
    nr: Nornir,
    *,
    dry_run: bool = False,
    rollback: bool = True,
    settle: float = 60.0,
    max_age: int | None = None,
    progress: Progress | None = None,
) -> DeployReport:
    with deploy_lock(Path(nr.inventory.defaults.data["source"])):
        return deploy_locked(nr, dry_run=dry_run, rollback=rollback, settle=settle, max_age=max_age, progress=progress)


def deploy_locked(
    nr: Nornir,
    *,
    dry_run: bool = False,
    rollback: bool = True,
    settle: float = 60.0,
    max_age: int | None = None,
    progress: Progress | None = None,
) -> DeployReport:
    """deploy for a caller that already holds the source's deploy lock (key rotation)."""
    start = time.monotonic()
    source = Path(nr.inventory.defaults.data["source"])
    mesh_plan = current_plan(nr)
    nr.data.dry_run = dry_run
    hosts = {name: HostOutcome(name) for name in nr.inventory.hosts}
    timings: dict[str, float] = {}
    gathered = run_phase(nr, progress, "gather keys and files", gather_node, timings)
    facts: dict[str, NodeFacts] = {}
    for name, result in gathered.items():
        if result.failed:
            hosts[name] = HostOutcome(name, ok=False, error=f"unreachable or failing: {error_text(result)}")
        else:
            facts[name] = result[0].result
    state = mesh_plan.next_state()
    for name, fact in facts.items():
        if fact.public_key:
            state.public_keys[name] = fact.public_key
    plan = MeshPlan(mesh_plan.mesh, state)
    if not dry_run:
        save_state(state_path(source), state)
    desired: dict[str, dict[str, str]] = {}
    node_plans: dict[str, NodePlan] = {}
    for name in facts:
        node_plans[name] = with_known_peers(plan.node(name))
        desired[name] = render_node(node_plans[name], plan.mesh.settings.name)
    current = {name: fact.files for name, fact in facts.items()}
    pushed = run_phase(
        nr.filter(filter_func=lambda h: h.name in desired),
        progress,
        "push and apply",
        _push_planned,
        timings,
        desired=desired,
        current=current,
    )
    for name, result in pushed.items():
        outcome = hosts[name]
        if result.failed:
            outcome.ok, outcome.error = False, error_text(result)
            outcome.changed = not dry_run
        else:
            outcome.changed, outcome.diff, outcome.actions = (
                result[0].changed,
                result[0].diff or "",
                result[0].result,
            )
    report = DeployReport(dry_run, hosts, phases=timings)
    changed = [h for h in report.changed if h in current]
    if dry_run:
        report.seconds = time.monotonic() - start
        return report
    for name in changed:
        if hosts[name].ok:
            write_tree(rendered_dir(source), name, desired[name])
    # Verify (and re-verify after a rollback) the hosts that answered; links to the others are left out.
    reachable = nr.filter(filter_func=lambda h: h.name in facts)
    failed = frozenset(nr.inventory.hosts) - facts.keys()
    if changed:
        verify_started = time.monotonic()
        report.verify = verify(
            reachable,
            plans=node_plans,
            settle=settle,
            max_age=max_age,
            progress=progress,
            ignore=failed,
        )
        timings["verify"] = time.monotonic() - verify_started
    broken = [h for h in changed if not hosts[h].ok]
    if rollback and (broken or (report.verify is not None and not report.verify.ok)):
        rollback_started = time.monotonic()
        report.after_rollback = _roll_back(
            reachable, changed, desired, current, hosts, settle, max_age, progress, ignore=failed
        )
        timings["rollback and re-verify"] = time.monotonic() - rollback_started
        for name in changed:
            write_tree(rendered_dir(source), name, current[name])
    report.seconds = time.monotonic() - start
    return report


def _roll_back(
    nr: Nornir,
    changed: list[str],
    desired: dict[str, dict[str, str]],
    current: dict[str, dict[str, str]],
    hosts: dict[str, HostOutcome],
    settle: float,
    max_age: int | None,
    progress: Progress | None,
    ignore: frozenset[str],
) -> VerifyReport:
    """Put back what the changed hosts had before this run (like an unconfirmed commit), then re-check."""
    back = nr.filter(filter_func=lambda h: h.name in changed)
    restored = run_phase(back, progress, "roll back", _push_planned, desired=current, current=desired)
    for name, result in restored.items():
        hosts[name].rolled_back = not result.failed
        if result.failed:
            hosts[name].error += f"; rollback failed: {error_text(result)}"
    return verify(nr, files=current, settle=settle, max_age=max_age, progress=progress, ignore=ignore)


def involves(check: NodeCheck, nodes: frozenset[str], plan: MeshPlan) -> bool:
    """Whether a check is about a link to, or a route towards, one of `nodes`."""
    if not nodes:
        return False
    if ":" in check.subject and check.subject.split(":", 1)[1] in nodes:
        return True
    return any(check.subject in map(str, plan.mesh.nodes[n].networks) for n in nodes if n in plan.mesh.nodes)


def verify(
    nr: Nornir,
    *,
    plans: dict[str, NodePlan] | None = None,
    files: dict[str, dict[str, str]] | None = None,
    settle: float = 0.0,
    max_age: int | None = None,
    progress: Progress | None = None,
    ignore: frozenset[str] = frozenset(),
) -> VerifyReport:
    """Collect live state in parallel and compare it with the plan; poll up to `settle` s for convergence.

    `files` (node -> rendered files) checks against given files instead of the plan (used after rollback).
    `ignore`: nodes already reported as failed (unreachable): links and routes towards them are left out,
    so one dead host does not fail, and roll back, everyone else's deploy.
    """
    mesh_plan = current_plan(nr)
    if plans is None:
        plans = {name: with_known_peers(mesh_plan.node(name)) for name in nr.inventory.hosts}
    expected = expectations(mesh_plan, plans, files)
    age = max_age or mesh_plan.mesh.settings.handshake_max_age
    deadline = time.monotonic() + settle
    first = True
    while True:
        round_started = time.monotonic()
        collected = run_phase(
            nr,
            progress if first else None,
            "collect wg/ospf state",
            collect_status,
            probes={n: list(e.probes) for n, e in expected.items()},
            routed=mesh_plan.mesh.settings.routing == "ospf",
        )
        first = False
        checks: list[NodeCheck] = []
        for name, result in collected.items():
            if result.failed:
                checks.append(NodeCheck(name, "host", "reachable", False, error_text(result)))
            elif name in expected:
                checks.extend(evaluate(expected[name], result[0].result, age))
        report = VerifyReport([c for c in checks if not involves(c, ignore, mesh_plan)], expected)
        if report.ok or time.monotonic() >= deadline:
            return report
        # Poll again after as long as the round took (at least 0.5 s, never past the deadline): polling
        # then takes at most half the time, so slow rounds (many or loaded hosts) are not run back to back.
        pause = max(0.5, time.monotonic() - round_started)
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
