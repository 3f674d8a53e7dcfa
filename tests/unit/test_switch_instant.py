"""The key switch's wait for an agreed instant (mesh_tasks.tasks.keys.wait_until), run by a real sh."""

from __future__ import annotations

import subprocess
import time

from mesh_tasks.tasks.keys import wait_until


def waited(at: float, longest: float = 2.0) -> float:
    started = time.monotonic()
    subprocess.run(["sh", "-c", wait_until(at, longest)], check=True, timeout=10)
    return time.monotonic() - started


def test_waits_for_the_instant() -> None:
    assert waited(time.time() + 0.6) >= 0.5


def test_a_late_command_acts_at_once() -> None:
    assert waited(time.time() - 30) < 0.5


def test_a_clock_far_behind_waits_no_longer_than_the_cap() -> None:
    assert waited(time.time() + 3600, longest=0.2) < 1.5
