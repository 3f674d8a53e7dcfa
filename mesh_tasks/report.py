"""Turning findings and results into rich tables for people and JSON for machines.

Nothing here decides anything: the core and the workflow produce values, this only shows them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mesh_tasks.core.findings import Finding, Severity

console = Console(stderr=False, highlight=False)
err_console = Console(stderr=True, highlight=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def findings_table(findings: Sequence[Finding], title: str = "Validation") -> Table:
    table = Table(title=f"{title}: {len(findings)} finding(s)", title_justify="left", expand=False)
    for column in ("severity", "node", "field", "problem"):
        table.add_column(column, overflow="fold")
    for f in sorted(findings, key=lambda f: (f.severity is not Severity.ERROR, f.node, f.field)):
        style = "bold red" if f.severity is Severity.ERROR else "yellow"
        table.add_row(f"[{style}]{f.severity.value}[/]", escape(f.node), escape(f.field), escape(f.message))
    return table


def simple_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:  # cells are markup (ok_mark); text that came from hosts or the SoT is escaped by callers
        table.add_row(*(str(c) for c in row))
    return table


def ok_mark(ok: bool) -> str:
    return "[green]ok[/]" if ok else "[bold red]FAIL[/]"
