"""ip -j route get and wg show allowed-ips: what `where` reads."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from mesh_tasks.host.parsers import (
    ParseError,
    PeerAllowedIps,
    longest_match,
    parse_allowed_ips,
    parse_route_get,
)

FIX = Path(__file__).parent / "fixtures"
PUB_B = "Cn0GOmipjxIB3OEFlBiakGR/41tFFPtwSCt9gxdbK08="
addr = ipaddress.ip_address


def read(rel: str) -> str:
    return (FIX / rel).read_text()


def test_route_get_via_tunnel() -> None:
    r = parse_route_get(read("up/mtp-a/route_get_10.2.0.1.txt"))
    assert r.routed and r.route_type == "unicast"
    assert (r.destination, r.gateway, r.device, r.source) == (
        addr("10.2.0.1"),
        addr("10.254.0.1"),
        "wg-b",
        addr("10.254.0.0"),
    )


def test_route_get_connected_and_local() -> None:
    peer = parse_route_get(read("up/mtp-a/route_get_10.254.0.1.txt"))
    assert peer.gateway is None and peer.device == "wg-b"
    local = parse_route_get(read("up/mtp-a/route_get_10.1.0.1.txt"))
    assert local.route_type == "local" and local.device == "lo"


def test_route_get_refused_is_a_value() -> None:
    r = parse_route_get(read("up/mtp-a/route_get_10.77.0.1.txt"))
    assert not r.routed and r.error == "Network is unreachable" and r.device is None


@pytest.mark.parametrize("text", ["", "[]", "[{}]", "garbage", '[{"dst": "x"}]', "{}"])
def test_route_get_odd_output(text: str) -> None:
    with pytest.raises(ParseError):
        parse_route_get(text)


def test_allowed_ips_single_and_all() -> None:
    (one,) = parse_allowed_ips(read("up/mtp-a/allowed_ips_wg-b.txt"))
    assert one.interface is None and one.public_key == PUB_B
    assert [str(n) for n in one.networks] == ["10.254.0.0/16", "224.0.0.5/32", "224.0.0.6/32", "10.0.0.0/8"]
    (every,) = parse_allowed_ips(read("up/mtp-a/allowed_ips_all.txt"))
    assert every.interface == "wg-b" and every.networks == one.networks


def test_allowed_ips_none_and_errors() -> None:
    (p,) = parse_allowed_ips(f"{PUB_B}\t(none)\n")
    assert p.networks == ()
    with pytest.raises(ParseError, match="public key"):
        parse_allowed_ips("nokey\t10.0.0.0/8\n")
    with pytest.raises(ParseError, match="not a prefix"):
        parse_allowed_ips(f"{PUB_B}\t10.0.0.0/8 bogus\n")
    with pytest.raises(ParseError, match="fields"):
        parse_allowed_ips("Unable to access interface: Protocol not supported\n")


def test_longest_match() -> None:
    shortcut = PeerAllowedIps("wg-b", "x" * 43 + "=", (ipaddress.ip_network("10.254.7.0/24"),))
    entries = (*parse_allowed_ips(read("up/mtp-a/allowed_ips_all.txt")), shortcut)
    assert longest_match(addr("10.254.7.9"), entries) == entries[1]
    assert longest_match(addr("10.254.0.1"), entries) == entries[0]
    assert longest_match(addr("10.9.9.9"), entries) == entries[0]  # 10.0.0.0/8
    assert longest_match(addr("192.168.1.1"), entries) is None
    assert longest_match(addr("fd00::1"), entries) is None
