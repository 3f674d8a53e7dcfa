"""SSH identities of a lab: one client key for the controller, one host key per host, a known_hosts file.

Host keys are pinned in known_hosts by management address so the controller can (and must) use strict
host key checking, exactly as against real servers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mesh_tasks.lab.commands import run


def generate_key(path: Path, comment: str) -> str:
    """Write an ed25519 key pair at path (private 0600) and return the public key line."""
    for p in (path, path.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    os.chmod(path, 0o600)
    return path.with_suffix(".pub").read_text().strip()


def write_known_hosts(path: Path, host_keys: Mapping[str, str]) -> None:
    """One `ADDRESS ssh-ed25519 KEY` line per host (management address -> public host key line)."""
    lines = []
    for address, pub in host_keys.items():
        kind, blob = pub.split()[:2]
        lines.append(f"{address} {kind} {blob}")
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o644)


def ssh_argv(address: str, key: Path, known_hosts: Path, *, timeout: int = 3) -> list[str]:
    """OpenSSH client options for a lab host: key only, strict host keys, no user config, no agent."""
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ConnectTimeout={timeout}",
        "-o",
        "LogLevel=ERROR",
        f"root@{address}",
    ]
