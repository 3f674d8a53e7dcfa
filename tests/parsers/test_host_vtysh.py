"""FRR vtysh JSON parsers and frr-reload --test, on output captured from FRR 8.4.4."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from mesh_tasks.host.commands import split_batch
from mesh_tasks.host.parsers import (
    ParseError,
    parse_bfd_peers,
    parse_frr_reload_test,
    parse_ospf_interfaces,
    parse_ospf_neighbors,
    parse_routes,
    strip_vtysh_noise,
)

FIX = Path(__file__).parent / "fixtures"
NOISE = "% Can't open configuration file /etc/frr/vtysh.conf due to 'No such file or directory'.\n"
net = ipaddress.ip_network


def read(rel: str) -> str:
    return (FIX / rel).read_text()


def test_fixtures_carry_the_noise_line() -> None:
    text = read("up/mtp-a/ospf_neighbors.txt")
    assert text.startswith(NOISE)
    assert not strip_vtysh_noise(text).startswith("%")
    assert parse_ospf_neighbors(text) == parse_ospf_neighbors(strip_vtysh_noise(text))


def test_ospf_neighbor_full() -> None:
    (n,) = parse_ospf_neighbors(read("up/mtp-a/ospf_neighbors.txt"))
    assert str(n.router_id) == "10.255.0.2"
    assert n.full and n.state == "Full" and n.role == "-"
    assert str(n.address) == "10.254.0.1"
    assert n.interface == "wg-b" and str(n.local_address) == "10.254.0.0"
    assert n.up_time_ms is not None and n.up_time_ms > 0
    assert n.dead_time_ms is not None and n.dead_time_ms <= 4000
    (m,) = parse_ospf_neighbors(read("up/mtp-b/ospf_neighbors.txt"))
    assert (str(m.router_id), m.interface) == ("10.255.0.1", "wg-a")


@pytest.mark.parametrize("state", ["down", "bfd_down"])
def test_ospf_neighbor_gone_when_peer_down(state: str) -> None:
    assert parse_ospf_neighbors(read(f"{state}/mtp-a/ospf_neighbors.txt")) == ()


def test_bfd_peer_up() -> None:
    (p,) = parse_bfd_peers(read("up/mtp-a/bfd_peers.txt"))
    assert p.up and str(p.peer) == "10.254.0.1" and p.interface == "wg-b"
    assert not p.multihop and p.vrf == "default"
    assert (p.transmit_interval_ms, p.receive_interval_ms, p.detect_multiplier) == (50, 50, 3)
    assert (p.remote_transmit_interval_ms, p.remote_receive_interval_ms, p.remote_detect_multiplier) == (
        50,
        50,
        3,
    )
    assert p.uptime_s is not None and p.downtime_s is None


def test_bfd_dynamic_session_vanishes_static_one_shows_down() -> None:
    assert parse_bfd_peers(read("down/mtp-a/bfd_peers.txt")) == ()
    assert parse_bfd_peers(read("bfd_down/mtp-a/bfd_peers.txt")) == ()
    (p,) = parse_bfd_peers(read("bfd_down/mtp-a/bfd_peers_static.txt"))
    assert p.status == "down" and not p.up
    assert p.downtime_s is not None and p.uptime_s is None
    assert p.diagnostic == "neighbor signaled session down"


def test_routes_up() -> None:
    table = parse_routes(read("up/mtp-a/ip_route.txt"))
    (remote,) = table[net("10.2.0.0/24")]
    assert remote.protocol == "ospf" and remote.selected and remote.installed
    assert remote.metric == 20 and remote.distance == 110
    (hop,) = remote.nexthops
    assert str(hop.ip) == "10.254.0.1" and hop.interface == "wg-b" and hop.fib and hop.active
    # connected wins over OSPF's copy of the local LAN
    lan = {r.protocol: r for r in table[net("10.1.0.0/24")]}
    assert lan["connected"].selected and not lan["ospf"].selected
    assert lan["connected"].nexthops[0].directly_connected


def test_routes_down_lose_the_remote_lan() -> None:
    table = parse_routes(read("down/mtp-a/ip_route.txt"))
    assert net("10.2.0.0/24") not in table
    assert net("10.1.0.0/24") in table


def test_ipv6_routes_and_blackholes() -> None:
    v6 = parse_routes(read("up/mtp-a/ipv6_route.txt"))
    assert all(p.version == 6 for p in v6)
    sections = split_batch(read("netmiko/batch_all.txt"))
    (bh,) = parse_routes(sections["ip_routes"].text)[net("10.99.0.0/16")]
    assert bh.protocol == "static" and bh.nexthops[0].blackhole and bh.nexthops[0].ip is None
    (bh6,) = parse_routes(sections["ipv6_routes"].text)[net("fd99::/48")]
    assert bh6.nexthops[0].blackhole


def test_ospf_interfaces() -> None:
    ifs = {i.name: i for i in parse_ospf_interfaces(read("up/mtp-a/ospf_interface.txt"))}
    wg = ifs["wg-b"]
    assert wg.network_type == "POINTOPOINT" and wg.state == "Point-To-Point"
    assert (wg.hello_ms, wg.dead_s, wg.cost) == (1000, 4, 10)
    assert not wg.passive and wg.bfd and (wg.neighbors, wg.adjacent) == (1, 1)
    assert str(wg.address) == "10.254.0.0/31"
    lan = ifs["lan0"]
    assert lan.passive and not lan.bfd and lan.network_type == "BROADCAST"
    down = {i.name: i for i in parse_ospf_interfaces(read("down/mtp-a/ospf_interface.txt"))}
    assert down["wg-b"].adjacent == 0


@pytest.mark.parametrize("parser", [parse_ospf_neighbors, parse_bfd_peers, parse_routes, parse_ospf_interfaces])
def test_vtysh_errors_are_parse_errors(parser: object) -> None:
    assert callable(parser)
    with pytest.raises(ParseError, match="not JSON"):
        parser(read("misc/vtysh_no_daemons.txt"))
    with pytest.raises(ParseError, match="empty output"):
        parser(NOISE)
    with pytest.raises(ParseError):
        parser("% Unknown command: show ip ospf neighbour json\n")


@pytest.mark.parametrize(
    ("parser", "text", "message"),
    [
        (parse_ospf_neighbors, '{"neighbors": {"10.0.0.1": [{"nbrState": "Weird/-"}]}}', "unknown state"),
        (parse_ospf_neighbors, '{"neighbours": {}}', "missing field 'neighbors'"),
        (parse_ospf_neighbors, "[]", "expected a JSON object"),
        (parse_bfd_peers, '[{"peer": "10.0.0.1", "status": "sideways"}]', "unknown status"),
        (parse_bfd_peers, "{}", "expected a JSON list"),
        (parse_routes, '{"not-a-prefix": []}', "not a prefix"),
        (parse_routes, '{"10.0.0.0/8": [{"protocol": "ospf", "distance": "x", "metric": 1}]}', "distance"),
    ],
)
def test_odd_json_is_an_error(parser: object, text: str, message: str) -> None:
    assert callable(parser)
    with pytest.raises(ParseError, match=message):
        parser(text)


def test_frr_reload_fixed_point_and_diffs() -> None:
    assert parse_frr_reload_test(read("frr_reload/test_fixed_point.txt")).empty
    diff = parse_frr_reload_test(read("frr_reload/test_shape_vs_running.txt"))
    assert not diff.empty
    assert " ip ospf network point-to-point" in diff.to_add
    assert "  detect-multiplier 3" in diff.to_add
    assert " ip ospf passive" in diff.to_delete


def test_frr_reload_syntax_error_is_not_a_diff() -> None:
    with pytest.raises(ParseError, match="Unknown command:  ip ospf cost banana"):
        parse_frr_reload_test(read("frr_reload/test_syntax_error.txt"))


def test_frr_reload_odd_line() -> None:
    with pytest.raises(ParseError, match="before any section"):
        parse_frr_reload_test("Traceback (most recent call last):\n")
