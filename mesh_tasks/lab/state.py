"""The lab's memory: one JSON file listing everything `lab up` created, written before it is created.

Writing the intent first means a crash at any point leaves a file that `lab down` can finish from;
reading tolerates missing keys for the same reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


@dataclass(slots=True)
class HostState:
    """What the lab knows about one host; pid is the namespace holder process (nsenter target)."""

    name: str
    namespace: str
    host_dir: str
    management: str
    underlay: str | None = None  # the address peers use (the router's public address when NATed)
    nat: bool = False
    has_endpoint: bool = True
    role: str = "spoke"
    router_namespace: str | None = None
    private: str | None = None
    router_private: str | None = None
    underlay_link: str = ""  # root-side veth ("link-down" cuts it for public hosts)
    networks: list[str] = field(default_factory=list)
    pid: int | None = None
    wg_stopped: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HostState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(slots=True)
class LabState:
    """Everything created, by name: namespaces, root links, bridges, routes, files."""

    state_dir: str
    lab_id: str
    status: str = "starting"  # starting -> up -> (deleted by down)
    address_range: str = ""
    root_address: str = ""
    bridges: list[str] = field(default_factory=list)
    root_links: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=list)  # {"prefix": str, "metric": int}
    hosts: dict[str, HostState] = field(default_factory=dict)
    client_key: str = ""
    known_hosts: str = ""
    overlay: str = ""
    files: list[str] = field(default_factory=list)  # paths (files or dirs) to remove at down

    @property
    def path(self) -> Path:
        return Path(self.state_dir) / STATE_FILE

    def save(self) -> None:
        """Atomically replace the state file (temp file + rename), so a crash never leaves half a file."""
        Path(self.state_dir).mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        fd, tmp = tempfile.mkstemp(dir=self.state_dir, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)  # keep host order: it is the SoT's
            fh.write("\n")
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, state_dir: Path) -> LabState | None:
        """The saved state, or None if there is none or it is unreadable (teardown then works from names)."""
        try:
            data = json.loads((state_dir / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        hosts = {
            name: HostState.from_json(h)
            for name, h in (data.get("hosts") or {}).items()
            if isinstance(h, dict) and {"name", "namespace", "host_dir", "management"} <= h.keys()
        }
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "hosts"}
        known.setdefault("state_dir", str(state_dir))
        known.setdefault("lab_id", "")
        return cls(hosts=hosts, **known)
