"""One vtysh start, several JSON answers: cut back into the documents the parsers take."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_tasks.host.parsers import (
    ParseError,
    parse_bfd_peers,
    parse_ospf_neighbors,
    parse_routes,
    split_json_documents,
)

UP = Path(__file__).parent / "fixtures" / "up" / "mtp-a"


def test_three_answers_back_to_back() -> None:
    parts = [(UP / name).read_text() for name in ("ospf_neighbors.txt", "bfd_peers.txt", "ip_route.txt")]
    neighbors, bfd, routes = split_json_documents("".join(parts), 3)  # noise lines and all
    assert [n.full for n in parse_ospf_neighbors(neighbors)] == [True]
    assert [b.up for b in parse_bfd_peers(bfd)] == [True]
    assert parse_routes(routes)


def test_missing_or_broken_answers_are_errors() -> None:
    with pytest.raises(ParseError, match="expected 3 JSON answers, got 1"):
        split_json_documents("{}\n", 3)
    with pytest.raises(ParseError, match="answer 2: not JSON"):
        split_json_documents("{}\n{oops", 2)
