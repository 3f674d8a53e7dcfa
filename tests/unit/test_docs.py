"""Docs that cannot rot: every `python -m mesh_tasks ...` line in README.md and runbooks/ must be a
command line the CLI accepts (the procedures themselves run on real hosts in tests/lab)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mesh_tasks.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "runbooks").glob("*.md"))]


def _commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"```sh\n(.*?)```", doc.read_text(), flags=re.S):
            for line in block.splitlines():
                line = line.split("#", 1)[0].strip()
                if line.startswith("python -m mesh_tasks"):
                    found.append((doc.name, line))
    return found


def test_docs_have_commands() -> None:
    assert len(_commands()) >= 15


@pytest.mark.parametrize(("doc", "line"), _commands())
def test_documented_command_parses(doc: str, line: str) -> None:
    argv = shlex.split(line)[3:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse's way of refusing
        pytest.fail(f"{doc}: `{line}` is not accepted by the CLI (exit {exc.code})")
    assert callable(args.func)
