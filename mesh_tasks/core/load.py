"""Source of truth (+ optional lab overlay) + state -> validated plan. One path for CLI and inventory."""

from __future__ import annotations

from pathlib import Path

from mesh_tasks.core.findings import Finding
from mesh_tasks.core.model import Mesh, apply_overlay, load_mesh, load_yaml
from mesh_tasks.core.plan import MeshPlan
from mesh_tasks.core.state import load_state, state_path
from mesh_tasks.core.validation import validate


def load_source(source: str | Path, overlay: str | Path | None = None) -> Mesh:
    mesh = load_mesh(source)
    if overlay is not None:
        mesh = apply_overlay(mesh, load_yaml(Path(overlay)) or {})
    return mesh


def build_plan(source: str | Path, overlay: str | Path | None = None) -> tuple[MeshPlan, list[Finding]]:
    """Raises MeshInputError for shape errors; returns semantic findings for the caller to judge."""
    mesh = load_source(source, overlay)
    plan = MeshPlan(mesh, load_state(state_path(Path(source))))
    return plan, validate(plan)
