"""The few ways a lab can fail, as named exceptions the CLI turns into a message and an exit code."""

from __future__ import annotations


class LabError(Exception):
    """Something the lab could not do; the message says what and what to do about it."""


class LabRangeError(LabError):
    """The lab's address range (or an overlay prefix) collides with this machine's routes: nothing created."""


class LabPreflightError(LabError):
    """This machine cannot run a lab (not root, a binary missing): nothing created."""
