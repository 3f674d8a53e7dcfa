"""What changes between two sets of rendered files (paths -> text): the plan and dry-run view."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str
    kind: str  # "added" | "removed" | "changed"
    diff: str


def diff_files(old: dict[str, str], new: dict[str, str], label: str = "") -> list[FileChange]:
    changes = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        kind = "added" if before is None else "removed" if after is None else "changed"
        lines = difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            (after or "").splitlines(keepends=True),
            fromfile=f"{label}{path} (current)",
            tofile=f"{label}{path} (planned)",
        )
        changes.append(FileChange(path, kind, "".join(lines)))
    return changes


def rendered_dir(source: Path) -> Path:
    """inventory/mesh.yaml -> inventory/mesh.rendered: what was last deployed, per node."""
    return source.with_name(f"{source.stem}.rendered")


def read_tree(root: Path, node: str) -> dict[str, str]:
    base = root / node
    if not base.is_dir():
        return {}
    return {"/" + str(p.relative_to(base)): p.read_text() for p in sorted(base.rglob("*")) if p.is_file()}


def write_tree(root: Path, node: str, files: dict[str, str]) -> None:
    """Replace a node's tree: files that are no longer rendered disappear too."""
    base = root / node
    for stale in read_tree(root, node).keys() - files.keys():
        (base / stale.lstrip("/")).unlink()
    for path, text in files.items():
        target = base / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
