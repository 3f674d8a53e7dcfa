"""Running the host's tools (ip, nsenter, ssh-keygen, ...) with errors that carry their stderr."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from mesh_tasks.lab.errors import LabError


def run(
    argv: Sequence[str], *, input: str | None = None, check: bool = True, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run argv (never through a shell) and raise LabError naming the command when it fails and check is set."""
    try:
        proc = subprocess.run(list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    except FileNotFoundError as exc:
        raise LabError(f"not installed: {argv[0]}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError(f"failed ({proc.returncode}): {' '.join(argv)}: {detail}")
    return proc


def ip_batch(lines: Sequence[str], *, netns: str | None = None, force: bool = False) -> None:
    """Apply many `ip` commands in one process: one fork instead of hundreds keeps `lab up` fast.

    With force, ip keeps going after a failing line (used by teardown, where "already gone" is fine).
    """
    if not lines:
        return
    argv = ["ip"]
    if netns:
        argv += ["-n", netns]
    if force:
        argv.append("-force")
    argv += ["-batch", "-"]
    run(argv, input="\n".join(lines) + "\n", check=not force)
