"""The machine-written state beside the source of truth: public keys, sticky allocations, rotations.

Humans edit mesh.yaml; the tool writes mesh.state.json. Keeping allocations here is what makes them
sticky: a node added elsewhere never moves another node's address, port or interface name.
Private keys are never here: they stay on their node.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh_tasks.core.findings import MeshInputError, error

STATE_VERSION = 1


@dataclass
class MeshState:
    public_keys: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)  # node -> transit IPv4 address
    tunnels: dict[str, int] = field(default_factory=dict)  # "a~b" (sorted) -> tunnel id (routed mode)
    rotations: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> rotation progress

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "public_keys": dict(sorted(self.public_keys.items())),
            "addresses": dict(sorted(self.addresses.items())),
            "tunnels": dict(sorted(self.tunnels.items(), key=lambda kv: kv[1])),
            "rotations": dict(sorted(self.rotations.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeshState:
        return cls(
            public_keys=dict(data.get("public_keys", {})),
            addresses=dict(data.get("addresses", {})),
            tunnels={k: int(v) for k, v in data.get("tunnels", {}).items()},
            rotations=dict(data.get("rotations", {})),
        )


def state_path(source: Path) -> Path:
    """inventory/mesh.yaml -> inventory/mesh.state.json"""
    return source.with_name(f"{source.stem}.state.json")


def load_state(path: Path) -> MeshState:
    """A missing file is a fresh mesh; a corrupt one is an error naming the file (never guessed over)."""
    if not path.exists():
        return MeshState()
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        return MeshState.from_dict(data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise MeshInputError(
            [
                error(
                    "mesh",
                    str(path),
                    f"state file is corrupt ({exc}); restore it from a backup "
                    "or delete it to re-learn keys and allocations",
                )
            ]
        ) from None


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write via temp file + rename so a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_state(path: Path, state: MeshState) -> None:
    write_atomic(path, json.dumps(state.as_dict(), indent=1) + "\n")
