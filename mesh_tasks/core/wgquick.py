"""Reading our own wg-quick files back: what a node's interfaces and peers are supposed to be.

Verification compares the live `wg show` with these files, so the same check serves a fresh deploy
(files rendered from the plan) and a rollback (the files a node had before).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PlannedPeer:
    name: str  # from the "# NODE" comment the template writes above each peer
    public_key: str
    endpoint: str | None
    allowed_ips: frozenset[str]
    keepalive: int | None


@dataclass(frozen=True, slots=True)
class PlannedInterface:
    name: str
    address: str
    listen_port: int | None
    routed: bool
    peers: dict[str, PlannedPeer] = field(default_factory=dict)  # by public key


def parse_wg_quick(name: str, text: str) -> PlannedInterface:
    iface: dict[str, str] = {}
    peers: list[dict[str, str]] = []
    section: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line == "[Interface]":
            section = iface
        elif line == "[Peer]":
            section = {}
            peers.append(section)
        elif section is not None and line.startswith("#") and section is not iface and "name" not in section:
            section["name"] = line.lstrip("# ").strip()
        elif section is not None and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            section[key.strip().lower()] = value.strip()
    parsed = {}
    for p in peers:
        if "publickey" not in p:
            continue
        keepalive = p.get("persistentkeepalive")
        parsed[p["publickey"]] = PlannedPeer(
            name=p.get("name", p["publickey"][:8]),
            public_key=p["publickey"],
            endpoint=p.get("endpoint"),
            allowed_ips=frozenset(a.strip() for a in p.get("allowedips", "").split(",") if a.strip()),
            keepalive=int(keepalive) if keepalive else None,
        )
    port = iface.get("listenport")
    return PlannedInterface(
        name, iface.get("address", ""), int(port) if port else None, iface.get("table") == "off", parsed
    )
