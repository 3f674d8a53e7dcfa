"""Rendering node plans into files with the Jinja2 templates under templates/.

`render_node` is the pure entry point; the Nornir task in mesh_tasks.tasks renders the same templates
with the same variables through nornir-jinja2, so both paths produce identical text.
"""

from __future__ import annotations

import os
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2

from mesh_tasks.core.plan import InterfacePlan, NodePlan, PeerPlan

TEMPLATES_DIR = Path(os.environ.get("MESH_TASKS_TEMPLATES", Path(__file__).resolve().parents[2] / "templates"))
WIREGUARD_DIR = "/etc/wireguard"
FRR_CONF = "/etc/frr/frr.conf"
PRIVATE_KEY = f"{WIREGUARD_DIR}/private.key"
IGMP_MAX_MEMBERSHIPS = 4096  # one per OSPF interface; fixed, so a growing hub never rewrites its files


@cache
def environment(path: Path = TEMPLATES_DIR) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(path),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def wireguard_path(iface: InterfacePlan) -> str:
    return f"{WIREGUARD_DIR}/{iface.name}.conf"


@lru_cache(maxsize=1 << 16)
def render_peer(peer: PeerPlan) -> str:
    """One [Peer] block; cached because a full mesh repeats each peer's block in every other node's file."""
    return environment().get_template("wireguard-peer.j2").render(peer=peer)


def render_jobs(plan: NodePlan, mesh_name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(template, destination path on the node, template variables) for every file a node gets."""
    common = {
        "plan": plan,
        "mesh_name": mesh_name,
        "private_key_path": PRIVATE_KEY,
        "render_peer": render_peer,
        "igmp_max_memberships": IGMP_MAX_MEMBERSHIPS,
    }
    jobs = [("wireguard.conf.j2", wireguard_path(i), {**common, "iface": i}) for i in plan.interfaces]
    if plan.ospf is not None:
        jobs.append(("frr.conf.j2", FRR_CONF, {**common, "ospf": plan.ospf}))
    return jobs


def render_node(plan: NodePlan, mesh_name: str) -> dict[str, str]:
    """Destination path -> file text. Contains no private key, so it may be shown, diffed and stored."""
    env = environment()
    return {dest: env.get_template(t).render(**variables) for t, dest, variables in render_jobs(plan, mesh_name)}
