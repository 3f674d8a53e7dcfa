"""A three-node lab mesh (hub1, spoke1, NATed spoke2) in either routing mode."""

from __future__ import annotations

from typing import Any


def three_node_mesh(routing: str) -> dict[str, Any]:
    return {
        "mesh": {
            "name": f"rot-{routing}",
            "routing": routing,
            "topology": "hub-and-spoke",
            "keepalive": 5,
            "ospf": {"hello_interval": 1, "dead_interval": 4},
            "bfd": {"enabled": False},
        },
        "nodes": {
            "hub1": {
                "role": "hub",
                "management": "203.0.113.1",
                "endpoint": "203.0.113.1",
                "networks": ["10.31.0.0/24"],
            },
            "spoke1": {"management": "203.0.113.11", "endpoint": "203.0.113.11", "networks": ["10.41.0.0/24"]},
            "spoke2": {"management": "203.0.113.12", "endpoint": None, "nat": True, "networks": ["10.42.0.0/24"]},
        },
    }
