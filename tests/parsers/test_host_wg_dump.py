"""parse_wg_dump / format_wg_dump on captured output, refusal of secrets, and round trips."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh_tasks.host.commands import REDACTED
from mesh_tasks.host.parsers import (
    Endpoint,
    ParseError,
    UnredactedSecretError,
    WgDump,
    WgInterface,
    WgPeer,
    format_wg_dump,
    parse_wg_dump,
)

FIX = Path(__file__).parent / "fixtures"
PUB_A = "aKZVbC5b7XLxTk1kOGfbsyR/4k7r4jIx6uqwuKtdNTA="
PUB_B = "Cn0GOmipjxIB3OEFlBiakGR/41tFFPtwSCt9gxdbK08="


def key(seed: int) -> str:
    return base64.b64encode(bytes([seed % 256]) * 32).decode()


def test_up_host_a() -> None:
    dump = parse_wg_dump((FIX / "up/mtp-a/wg_dump.txt").read_text())
    assert dump.interfaces == (WgInterface("wg-b", PUB_A, 51820, fwmark=None, has_private_key=True),)
    (peer,) = dump.peers_of("wg-b")
    assert peer.public_key == PUB_B
    assert peer.endpoint == Endpoint(ipaddress.ip_address("198.18.200.2"), 51820)
    assert [str(n) for n in peer.allowed_ips] == ["10.254.0.0/16", "224.0.0.5/32", "224.0.0.6/32", "10.0.0.0/8"]
    assert peer.latest_handshake is not None and peer.latest_handshake > 1_700_000_000
    assert peer.rx_bytes > 0 and peer.tx_bytes > 0
    assert peer.persistent_keepalive == 25
    assert not peer.has_preshared_key
    assert dump.peer(PUB_B) == peer
    assert dump.interface("wg-x") is None


def test_both_hosts_see_each_other() -> None:
    a = parse_wg_dump((FIX / "up/mtp-a/wg_dump.txt").read_text())
    b = parse_wg_dump((FIX / "up/mtp-b/wg_dump.txt").read_text())
    assert a.interfaces[0].public_key == b.peers[0].public_key
    assert b.interfaces[0].public_key == a.peers[0].public_key


def test_mixed_interfaces_and_peers() -> None:
    dump = parse_wg_dump((FIX / "misc/wg_dump_mixed.txt").read_text())
    assert [i.name for i in dump.interfaces] == ["wg-n", "wg-t", "wg-b"]  # wg's order, not sorted
    wg_n = dump.interface("wg-n")
    assert wg_n is not None and wg_n.public_key is None and not wg_n.has_private_key
    wg_t = dump.interface("wg-t")
    assert wg_t is not None and wg_t.fwmark == 0x1234 and wg_t.listen_port == 51999
    psk_peer, bare_peer, nat_peer = dump.peers_of("wg-t")
    assert psk_peer.has_preshared_key
    assert str(psk_peer.endpoint) == "[fd00:dead::2]:51820"
    assert [str(n) for n in psk_peer.allowed_ips] == ["10.9.0.0/24", "fd10::/64"]
    assert psk_peer.latest_handshake is None
    assert bare_peer.endpoint is None and bare_peer.allowed_ips == ()
    assert bare_peer.persistent_keepalive is None
    assert nat_peer.persistent_keepalive == 15
    assert str(nat_peer.endpoint) == "203.0.113.7:4500"


def test_down_state_keeps_stale_handshake() -> None:
    up = parse_wg_dump((FIX / "up/mtp-a/wg_dump.txt").read_text()).peers[0]
    down = parse_wg_dump((FIX / "down/mtp-a/wg_dump.txt").read_text()).peers[0]
    assert down.latest_handshake == up.latest_handshake  # no new handshake while cut


def test_fixtures_hold_no_secret() -> None:
    for path in FIX.rglob("*.txt"):
        for line in path.read_text().splitlines():
            fields = line.split("\t")
            if len(fields) == 5 and fields[0].startswith("wg"):
                assert fields[1] in (REDACTED, "(none)"), path
            if len(fields) == 9:
                assert fields[2] in (REDACTED, "(none)"), path


def test_empty_dump_is_no_interfaces() -> None:
    assert parse_wg_dump("") == WgDump((), ())


@pytest.mark.parametrize(
    "line",
    [
        f"wg0\t{key(1)}\t{key(2)}\t51820\toff",  # raw interface line: private key
        f"wg0\tAAAA{key(1)}\t{key(2)}\t51820\toff",  # anything base64-long in that field
    ],
)
def test_refuses_unredacted_private_key(line: str) -> None:
    with pytest.raises(UnredactedSecretError) as err:
        parse_wg_dump(line + "\n")
    assert key(1) not in str(err.value)


def test_refuses_unredacted_preshared_key() -> None:
    text = f"wg0\t{REDACTED}\t{key(2)}\t51820\toff\nwg0\t{key(3)}\t{key(4)}\t(none)\t10.0.0.0/8\t0\t0\t0\toff\n"
    with pytest.raises(UnredactedSecretError, match="preshared key"):
        parse_wg_dump(text)


IFACE = f"wg0\t{REDACTED}\t{key(2)}\t51820\toff\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"wg0\t{key(2)}\t51820\toff\n", "4 tab-separated fields"),
        (f"wg0\t{key(3)}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n", "before its interface"),
        (IFACE + IFACE, "listed twice"),
        (f"wg0\t{REDACTED}\t{key(2)}\tport\toff\n", "not a non-negative integer"),
        (f"wg0\t{REDACTED}\tnotakey\t51820\toff\n", "public key"),
        (f"wg0\t{REDACTED}\t{key(2)}\t51820\t1234\n", "fwmark"),
        (f"wg0\tsecret\t{key(2)}\t51820\toff\n", "unexpected private key field"),
        (IFACE + f"wg0\t{key(3)}\t(none)\thost.example:1\t(none)\t0\t0\t0\toff\n", "endpoint"),
        (IFACE + f"wg0\t{key(3)}\t(none)\t1.2.3.4:0\t(none)\t0\t0\t0\toff\n", "port"),
        (IFACE + f"wg0\t{key(3)}\t(none)\t(none)\t10.0.0.0/33\t0\t0\t0\toff\n", "not a prefix"),
        (IFACE + f"wg0\t{key(3)}\t(none)\t(none)\t(none)\t-1\t0\t0\toff\n", "non-negative"),
        ("(unexpected line with 3 fields)\n", "host-side filter"),
    ],
)
def test_odd_lines_are_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_wg_dump(text)


def test_error_never_echoes_a_key() -> None:
    with pytest.raises(ParseError) as err:
        parse_wg_dump(f"wg0\t{key(7)}\textra\n")
    assert key(7) not in str(err.value)


# ------------------------------------------------------------------ property: format -> parse

keys = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
v4_nets = st.builds(
    lambda a, p: ipaddress.ip_network(f"{ipaddress.IPv4Address(a)}/{p}", strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6_nets = st.builds(
    lambda a, p: ipaddress.ip_network(f"{ipaddress.IPv6Address(a)}/{p}", strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)
endpoints = st.none() | st.builds(
    Endpoint,
    st.ip_addresses(),
    st.integers(1, 65535),
)
u64 = st.integers(0, 2**63)


@st.composite
def dumps(draw: st.DrawFn) -> WgDump:
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,14}", fullmatch=True), max_size=4, unique=True))
    interfaces = []
    peers = []
    for name in names:
        has_key = draw(st.booleans())
        interfaces.append(
            WgInterface(
                name=name,
                public_key=draw(keys) if has_key else None,
                listen_port=draw(st.integers(0, 65535)),
                fwmark=draw(st.none() | st.integers(1, 2**32 - 1)),
                has_private_key=has_key,
            )
        )
        for _ in range(draw(st.integers(0, 3))):
            peers.append(
                WgPeer(
                    interface=name,
                    public_key=draw(keys),
                    has_preshared_key=draw(st.booleans()),
                    endpoint=draw(endpoints),
                    allowed_ips=tuple(draw(st.lists(v4_nets | v6_nets, max_size=4))),
                    latest_handshake=draw(st.none() | st.integers(1, 2**40)),
                    rx_bytes=draw(u64),
                    tx_bytes=draw(u64),
                    persistent_keepalive=draw(st.none() | st.integers(1, 65535)),
                )
            )
    return WgDump(tuple(interfaces), tuple(peers))


@given(dumps())
def test_round_trip(dump: WgDump) -> None:
    assert parse_wg_dump(format_wg_dump(dump)) == dump


@given(dumps(), keys)
def test_any_unredacted_dump_is_refused(dump: WgDump, secret: str) -> None:
    text = format_wg_dump(dump)
    raw = text.replace(REDACTED, secret)
    if raw != text:
        with pytest.raises(UnredactedSecretError):
            parse_wg_dump(raw)
