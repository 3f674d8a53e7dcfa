"""The overlay file: how the product's inventory finds lab hosts without anyone editing the source of truth.

Format (a contract the inventory plugin and mesh_tasks.core.model.apply_overlay rely on):

    ssh: {username, key_file, known_hosts}
    nodes:
      NODE:
        management: {host: MGMT_ADDRESS, port: 22}
        endpoint_host: UNDERLAY_ADDRESS   # only when the SoT endpoint is not null
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from mesh_tasks.lab.state import HostState

HEADER = "# written by `mesh_tasks lab up`; maps source-of-truth nodes to lab hosts\n"
_PLAIN = re.compile(r"^[A-Za-z0-9/_.@+-][A-Za-z0-9/_.@+:-]*$")


def _scalar(value: str) -> str:
    """A YAML scalar: plain when safe, else a JSON string (valid YAML too)."""
    if _PLAIN.match(value) and value.lower() not in {"null", "true", "false", "yes", "no", "on", "off", "~"}:
        return value
    return json.dumps(value)


def render_overlay(hosts: Iterable[HostState], key_file: Path, known_hosts: Path) -> str:
    lines = [
        HEADER.rstrip("\n"),
        "ssh:",
        "  username: root",
        f"  key_file: {_scalar(str(key_file.resolve()))}",
        f"  known_hosts: {_scalar(str(known_hosts.resolve()))}",
        "nodes:",
    ]
    for h in hosts:
        lines.append(f"  {_scalar(h.name)}:")
        lines.append(f"    management: {{host: {h.management}, port: 22}}")
        if h.has_endpoint and h.underlay:
            lines.append(f"    endpoint_host: {h.underlay}")
    return "\n".join(lines) + "\n"


def write_overlay(path: Path, hosts: Iterable[HostState], key_file: Path, known_hosts: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_overlay(hosts, key_file, known_hosts))
    tmp.replace(path)
