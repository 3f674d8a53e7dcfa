"""Findings: what validation (or a check on a live host) has to say, as values.

The core never prints; the CLI turns findings into a table, JSON or an exit code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem, naming where it is so the user can fix it without guessing."""

    severity: Severity
    node: str  # the node (or "mesh" for mesh-wide settings)
    field: str  # dotted path into the source of truth, e.g. "nodes.hub1.endpoint"
    message: str

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        return data


def error(node: str, field: str, message: str) -> Finding:
    return Finding(Severity.ERROR, node, field, message)


def warning(node: str, field: str, message: str) -> Finding:
    return Finding(Severity.WARNING, node, field, message)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity is Severity.ERROR for f in findings)


class MeshInputError(Exception):
    """The source of truth cannot be used; carries every finding, not just the first."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("; ".join(f"{f.field}: {f.message}" for f in findings))
