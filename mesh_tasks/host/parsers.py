"""Typed records from a host's command output. Pure functions: text in, frozen dataclasses out.

Each parser takes the text of one command from `mesh_tasks.host.commands` (as `split_batch`
returns it) and either returns typed records or raises `ParseError` naming what it did not
understand. Nothing is guessed and nothing is silently dropped, with one exception: the
"% Can't open configuration file .../vtysh.conf" line vtysh prints on a host without a
vtysh.conf is noise and is skipped.

`parse_wg_dump` refuses (`UnredactedSecretError`) to build records from a dump that still
carries a private or preshared key: run `commands.WG_DUMP`, which redacts them on the host.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from mesh_tasks.host.commands import REDACTED, UNEXPECTED_LINE

__all__ = [
    "BfdPeer",
    "Endpoint",
    "FrrReloadDiff",
    "IPAddress",
    "IPNetwork",
    "NextHop",
    "OspfInterface",
    "OspfNeighbor",
    "ParseError",
    "PeerAllowedIps",
    "RouteEntry",
    "RouteGet",
    "UnredactedSecretError",
    "WgDump",
    "WgInterface",
    "WgPeer",
    "format_wg_dump",
    "longest_match",
    "parse_allowed_ips",
    "parse_bfd_peers",
    "parse_frr_reload_test",
    "parse_ospf_interfaces",
    "parse_ospf_neighbors",
    "parse_route_get",
    "parse_routes",
    "parse_wg_dump",
    "strip_vtysh_noise",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

NONE = "(none)"


class ParseError(ValueError):
    """Output that a parser does not understand; the message names the command and the line."""


class UnredactedSecretError(ParseError):
    """A dump line carries what looks like a private or preshared key. Nothing was stored."""


# A WireGuard key: 32 bytes in base64 = 43 characters + "="; the last character before "="
# carries only 4 bits, so it is one of 16 letters.
_KEY_RE = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
# A longer base64 run anywhere (a key pasted into a field that should not hold one).
_B64ISH_RE = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")


def _is_key(text: str) -> bool:
    return _KEY_RE.fullmatch(text) is not None


# --------------------------------------------------------------------------- wg show all dump


@dataclass(frozen=True)
class Endpoint:
    """A peer's current UDP endpoint as WireGuard reports it (always an address, never a name)."""

    host: IPAddress
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.host.version == 6 else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class WgInterface:
    name: str
    public_key: str | None  # None: no private key set
    listen_port: int
    fwmark: int | None
    has_private_key: bool


@dataclass(frozen=True)
class WgPeer:
    interface: str
    public_key: str
    has_preshared_key: bool
    endpoint: Endpoint | None
    allowed_ips: tuple[IPNetwork, ...]
    latest_handshake: int | None  # unix seconds; None: never
    rx_bytes: int
    tx_bytes: int
    persistent_keepalive: int | None  # seconds; None: off


@dataclass(frozen=True)
class WgDump:
    interfaces: tuple[WgInterface, ...]
    peers: tuple[WgPeer, ...]

    def interface(self, name: str) -> WgInterface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def peers_of(self, interface: str) -> tuple[WgPeer, ...]:
        return tuple(p for p in self.peers if p.interface == interface)

    def peer(self, public_key: str) -> WgPeer | None:
        return next((p for p in self.peers if p.public_key == public_key), None)


def _fail(what: str, lineno: int, line: str, why: str) -> ParseError:
    shown = _B64ISH_RE.sub("<base64>", line)  # never echo a possible key into an error
    return ParseError(f"{what}: line {lineno}: {why}: {shown!r}")


def _int(text: str, what: str, lineno: int, line: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise _fail(what, lineno, line, f"{text!r} is not a non-negative integer")
    return int(text)


def _endpoint(text: str, lineno: int, line: str) -> Endpoint | None:
    if text == NONE:
        return None
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)(?:%[^\]]+)?\]:(\d+)|([0-9.]+):(\d+)", text)
    if not m:
        raise _fail("wg dump", lineno, line, f"endpoint {text!r} is not ADDR:PORT")
    host_text, port_text = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    try:
        host = ipaddress.ip_address(host_text)
    except ValueError:
        raise _fail("wg dump", lineno, line, f"endpoint address {host_text!r} is invalid") from None
    port = int(port_text)
    if not 0 < port < 65536:
        raise _fail("wg dump", lineno, line, f"endpoint port {port} out of range")
    return Endpoint(host, port)


def _networks(texts: Iterable[str], what: str, lineno: int, line: str) -> tuple[IPNetwork, ...]:
    nets: list[IPNetwork] = []
    for t in texts:
        try:
            nets.append(ipaddress.ip_network(t, strict=False))
        except ValueError:
            raise _fail(what, lineno, line, f"{t!r} is not a prefix") from None
    return tuple(nets)


def _check_redacted(field: str, kind: str, lineno: int, line: str) -> bool:
    """True if a key is set (redacted), False if "(none)"; refuses anything else."""
    if field == REDACTED:
        return True
    if field == NONE:
        return False
    if _is_key(field) or _B64ISH_RE.search(field):
        raise UnredactedSecretError(
            f"wg dump: line {lineno}: the {kind} field holds a key, not {REDACTED!r}: "
            "refusing to parse an unredacted dump (run commands.WG_DUMP)"
        )
    raise _fail("wg dump", lineno, line.replace(field, "<field>"), f"unexpected {kind} field")


def parse_wg_dump(text: str) -> WgDump:
    """Parse the output of `commands.WG_DUMP` (`wg show all dump`, keys redacted on the host).

    Interface lines: name, private key (redacted), public key, listen port, fwmark.
    Peer lines: interface, public key, preshared key (redacted), endpoint, allowed ips,
    latest handshake, rx, tx, persistent keepalive. Empty output means no interfaces.
    """
    interfaces: dict[str, WgInterface] = {}
    peers: list[WgPeer] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith(UNEXPECTED_LINE):
            raise ParseError(f"wg dump: line {lineno}: the host-side filter saw {line!r}")
        fields = line.split("\t")
        if len(fields) == 5:
            name, private, public, port, fwmark = fields
            has_private = _check_redacted(private, "private key", lineno, line)
            if public != NONE and not _is_key(public):
                raise _fail("wg dump", lineno, line, "public key is not a WireGuard key")
            if fwmark == "off":
                mark = None
            elif re.fullmatch(r"0x[0-9a-f]+", fwmark):
                mark = int(fwmark, 16)
            else:
                raise _fail("wg dump", lineno, line, f"fwmark {fwmark!r} is neither 'off' nor hex")
            if name in interfaces:
                raise _fail("wg dump", lineno, line, f"interface {name!r} listed twice")
            interfaces[name] = WgInterface(
                name=name,
                public_key=None if public == NONE else public,
                listen_port=_int(port, "wg dump", lineno, line),
                fwmark=mark,
                has_private_key=has_private,
            )
        elif len(fields) == 9:
            iface, public, psk, endpoint, allowed, handshake, rx, tx, keepalive = fields
            has_psk = _check_redacted(psk, "preshared key", lineno, line)
            if iface not in interfaces:
                raise _fail("wg dump", lineno, line, f"peer of {iface!r} before its interface line")
            if not _is_key(public):
                raise _fail("wg dump", lineno, line, "peer public key is not a WireGuard key")
            hs = _int(handshake, "wg dump", lineno, line)
            peers.append(
                WgPeer(
                    interface=iface,
                    public_key=public,
                    has_preshared_key=has_psk,
                    endpoint=_endpoint(endpoint, lineno, line),
                    allowed_ips=() if allowed == NONE else _networks(allowed.split(","), "wg dump", lineno, line),
                    latest_handshake=hs or None,
                    rx_bytes=_int(rx, "wg dump", lineno, line),
                    tx_bytes=_int(tx, "wg dump", lineno, line),
                    persistent_keepalive=None if keepalive == "off" else _int(keepalive, "wg dump", lineno, line),
                )
            )
        else:
            # _fail masks base64 runs, so even a raw line in some other format leaks no key
            raise _fail("wg dump", lineno, line, f"{len(fields)} tab-separated fields, expected 5 or 9")
    return WgDump(tuple(interfaces.values()), tuple(peers))


def format_wg_dump(dump: WgDump) -> str:
    """The redacted dump text for `dump` (what `commands.WG_DUMP` prints). Inverse of parse_wg_dump.

    Interfaces keep their order and each is followed by its peers.
    """
    lines: list[str] = []
    for i in dump.interfaces:
        lines.append(
            "\t".join(
                (
                    i.name,
                    REDACTED if i.has_private_key else NONE,
                    i.public_key or NONE,
                    str(i.listen_port),
                    "off" if i.fwmark is None else f"0x{i.fwmark:x}",
                )
            )
        )
        for p in dump.peers_of(i.name):
            lines.append(
                "\t".join(
                    (
                        p.interface,
                        p.public_key,
                        REDACTED if p.has_preshared_key else NONE,
                        NONE if p.endpoint is None else str(p.endpoint),
                        ",".join(str(n) for n in p.allowed_ips) or NONE,
                        str(p.latest_handshake or 0),
                        str(p.rx_bytes),
                        str(p.tx_bytes),
                        "off" if p.persistent_keepalive is None else str(p.persistent_keepalive),
                    )
                )
            )
    return "".join(line + "\n" for line in lines)


# --------------------------------------------------------------------------- wg show allowed-ips


@dataclass(frozen=True)
class PeerAllowedIps:
    interface: str | None  # None for `wg show IFACE allowed-ips` (the caller knows IFACE)
    public_key: str
    networks: tuple[IPNetwork, ...]


def parse_allowed_ips(text: str) -> tuple[PeerAllowedIps, ...]:
    """Parse `wg show IFACE allowed-ips` (KEY<TAB>NETS) or `wg show all allowed-ips`
    (IFACE<TAB>KEY<TAB>NETS); NETS is space-separated or "(none)"."""
    out: list[PeerAllowedIps] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) == 2:
            iface, (key, nets) = None, fields
        elif len(fields) == 3:
            iface, key, nets = fields
        else:
            raise _fail("wg allowed-ips", lineno, line, f"{len(fields)} tab-separated fields")
        if not _is_key(key):
            raise _fail("wg allowed-ips", lineno, line, "not a WireGuard public key")
        networks = () if nets == NONE else _networks(nets.split(), "wg allowed-ips", lineno, line)
        out.append(PeerAllowedIps(iface, key, networks))
    return tuple(out)


def longest_match(address: IPAddress, entries: Iterable[PeerAllowedIps]) -> PeerAllowedIps | None:
    """The peer WireGuard would send `address` to: longest prefix over all entries' networks.

    Ties (the same prefix on two peers) cannot exist on one interface; across interfaces the
    first entry wins, as the caller ordered them.
    """
    best: tuple[int, PeerAllowedIps] | None = None
    for e in entries:
        for n in e.networks:
            if n.version == address.version and address in n and (best is None or n.prefixlen > best[0]):
                best = (n.prefixlen, e)
    return None if best is None else best[1]


# --------------------------------------------------------------------------- vtysh json


_VTYSH_NOISE_RE = re.compile(r"% Can't open configuration file \S+ due to '[^']*'\.")


def strip_vtysh_noise(text: str) -> str:
    """Drop the "% Can't open configuration file /etc/frr/vtysh.conf ..." lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not _VTYSH_NOISE_RE.fullmatch(line.strip()))


def split_json_documents(text: str, count: int) -> list[str]:
    """One `vtysh -c A -c B -c C` prints the JSON answers back to back: cut them apart, so one vtysh
    start (it connects to every daemon) serves several queries."""
    body = strip_vtysh_noise(text)
    decoder = json.JSONDecoder()
    out: list[str] = []
    pos = 0
    while len(out) < count:
        while pos < len(body) and body[pos].isspace():
            pos += 1
        if pos >= len(body):
            raise ParseError(f"vtysh: expected {count} JSON answers, got {len(out)}")
        try:
            _, end = decoder.raw_decode(body, pos)
        except json.JSONDecodeError as exc:
            raise ParseError(f"vtysh answer {len(out) + 1}: not JSON ({exc.msg})") from None
        out.append(body[pos:end])
        pos = end
    return out


def _vtysh_json(text: str, what: str) -> Any:
    body = strip_vtysh_noise(text).strip()
    if not body:
        raise ParseError(f"{what}: empty output (is the FRR daemon running?)")
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        first = body.splitlines()[0]
        raise ParseError(f"{what}: not JSON ({exc.msg} at line {exc.lineno}); output starts {first!r}") from None


def _req(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in obj:
        raise ParseError(f"{what}: missing field {key!r}")
    value = obj[key]
    # bool is an int subclass: keep them apart
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, (int,))):
        raise ParseError(f"{what}: field {key!r} is {value!r}, expected {kind}")
    return value


def _opt_int(obj: Mapping[str, Any], key: str, what: str) -> int | None:
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ParseError(f"{what}: field {key!r} is {value!r}, expected an integer")
    return value


def _opt_str(obj: Mapping[str, Any], key: str, what: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ParseError(f"{what}: field {key!r} is {value!r}, expected a string")
    return value


def _addr(text: Any, what: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ParseError(f"{what}: {text!r} is not an IP address") from None


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(f"{what}: expected a JSON list, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class OspfNeighbor:
    router_id: ipaddress.IPv4Address
    state: str  # "Full", "Init", "2-Way", "ExStart", "Exchange", "Loading", "Down", "Attempt"
    role: str  # after the "/" in nbrState: "-" on point-to-point, else "DR"/"Backup"/"DROther"
    address: ipaddress.IPv4Address  # the neighbor's interface address
    interface: str
    local_address: ipaddress.IPv4Address | None
    up_time_ms: int | None
    dead_time_ms: int | None

    @property
    def full(self) -> bool:
        return self.state == "Full"


_OSPF_STATES = frozenset({"Deleted", "Down", "Attempt", "Init", "2-Way", "ExStart", "Exchange", "Loading", "Full"})


def parse_ospf_neighbors(text: str) -> tuple[OspfNeighbor, ...]:
    """Parse `vtysh -c 'show ip ospf neighbor json'` (FRR 8.4)."""
    what = "show ip ospf neighbor json"
    data = _dict(_vtysh_json(text, what), what)
    if not data:  # "{}": ospfd runs without an OSPF instance (no router ospf yet)
        return ()
    neighbors = _dict(_req(data, "neighbors", dict, what), what)
    out: list[OspfNeighbor] = []
    for rid, entries in neighbors.items():
        for n in _list(entries, f"{what}: neighbor {rid}"):
            w = f"{what}: neighbor {rid}"
            n = _dict(n, w)
            state, _, role = str(_req(n, "nbrState", str, w)).partition("/")
            if state not in _OSPF_STATES:
                raise ParseError(f"{w}: unknown state {state!r}")
            iface, _, local = str(_req(n, "ifaceName", str, w)).partition(":")
            rid_addr = _addr(rid, w)
            nbr_addr = _addr(_req(n, "ifaceAddress", str, w), w)
            local_addr = _addr(local, w) if local else None
            if not isinstance(rid_addr, ipaddress.IPv4Address) or not isinstance(nbr_addr, ipaddress.IPv4Address):
                raise ParseError(f"{w}: OSPFv2 addresses must be IPv4")
            if local_addr is not None and not isinstance(local_addr, ipaddress.IPv4Address):
                raise ParseError(f"{w}: OSPFv2 addresses must be IPv4")
            out.append(
                OspfNeighbor(
                    router_id=rid_addr,
                    state=state,
                    role=role,
                    address=nbr_addr,
                    interface=iface,
                    local_address=local_addr,
                    up_time_ms=_opt_int(n, "upTimeInMsec", w),
                    dead_time_ms=_opt_int(n, "routerDeadIntervalTimerDueMsec", w),
                )
            )
    return tuple(out)


@dataclass(frozen=True)
class OspfInterface:
    name: str
    up: bool
    ospf_enabled: bool
    address: ipaddress.IPv4Interface | None
    network_type: str | None  # "POINTOPOINT", "BROADCAST", ...
    state: str | None  # "Point-To-Point", "DR", "Waiting", "Down", ...
    cost: int | None
    hello_ms: int | None
    dead_s: int | None
    passive: bool
    neighbors: int
    adjacent: int
    bfd: bool


def parse_ospf_interfaces(text: str) -> tuple[OspfInterface, ...]:
    """Parse `vtysh -c 'show ip ospf interface json'` (FRR 8.4)."""
    what = "show ip ospf interface json"
    data = _dict(_vtysh_json(text, what), what)
    out: list[OspfInterface] = []
    for name, i in _dict(_req(data, "interfaces", dict, what), what).items():
        w = f"{what}: interface {name}"
        i = _dict(i, w)
        address = None
        if "ipAddress" in i:
            prefixlen = _req(i, "ipAddressPrefixlen", int, w)
            try:
                address = ipaddress.IPv4Interface(f"{i['ipAddress']}/{prefixlen}")
            except ValueError:
                raise ParseError(f"{w}: bad address {i['ipAddress']!r}/{prefixlen!r}") from None
        out.append(
            OspfInterface(
                name=name,
                up=bool(_req(i, "ifUp", bool, w)),
                ospf_enabled=bool(i.get("ospfEnabled", False)),
                address=address,
                network_type=_opt_str(i, "networkType", w),
                state=_opt_str(i, "state", w),
                cost=_opt_int(i, "cost", w),
                hello_ms=_opt_int(i, "timerMsecs", w),
                dead_s=_opt_int(i, "timerDeadSecs", w),
                passive=bool(i.get("timerPassiveIface", False)),
                neighbors=_opt_int(i, "nbrCount", w) or 0,
                adjacent=_opt_int(i, "nbrAdjacentCount", w) or 0,
                bfd="peerBfdInfo" in i,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class BfdPeer:
    peer: IPAddress
    interface: str | None
    vrf: str
    multihop: bool
    local: IPAddress | None
    status: str  # "up", "down", "init", "shutdown", "unknown"
    diagnostic: str
    remote_diagnostic: str
    uptime_s: int | None  # while up
    downtime_s: int | None  # while not up
    detect_multiplier: int
    receive_interval_ms: int
    transmit_interval_ms: int
    remote_detect_multiplier: int | None
    remote_receive_interval_ms: int | None
    remote_transmit_interval_ms: int | None

    @property
    def up(self) -> bool:
        return self.status == "up"


_BFD_STATES = frozenset({"up", "down", "init", "shutdown", "unknown"})


def parse_bfd_peers(text: str) -> tuple[BfdPeer, ...]:
    """Parse `vtysh -c 'show bfd peers json'` (FRR 8.4). Dynamic sessions (from `ip ospf bfd`)
    vanish when OSPF drops the neighbor; configured `peer` sessions stay and show "down"."""
    what = "show bfd peers json"
    out: list[BfdPeer] = []
    for p in _list(_vtysh_json(text, what), what):
        p = _dict(p, what)
        w = f"{what}: peer {p.get('peer')!r}"
        status = _req(p, "status", str, w)
        if status not in _BFD_STATES:
            raise ParseError(f"{w}: unknown status {status!r}")
        local = p.get("local")
        out.append(
            BfdPeer(
                peer=_addr(_req(p, "peer", str, w), w),
                interface=_opt_str(p, "interface", w),
                vrf=str(p.get("vrf", "default")),
                multihop=bool(_req(p, "multihop", bool, w)),
                local=None if local is None else _addr(local, w),
                status=status,
                diagnostic=str(p.get("diagnostic", "")),
                remote_diagnostic=str(p.get("remote-diagnostic", "")),
                uptime_s=_opt_int(p, "uptime", w),
                downtime_s=_opt_int(p, "downtime", w),
                detect_multiplier=_req(p, "detect-multiplier", int, w),
                receive_interval_ms=_req(p, "receive-interval", int, w),
                transmit_interval_ms=_req(p, "transmit-interval", int, w),
                remote_detect_multiplier=_opt_int(p, "remote-detect-multiplier", w),
                remote_receive_interval_ms=_opt_int(p, "remote-receive-interval", w),
                remote_transmit_interval_ms=_opt_int(p, "remote-transmit-interval", w),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class NextHop:
    ip: IPAddress | None  # None: directly connected or blackhole
    interface: str | None
    active: bool
    fib: bool  # installed in the kernel
    directly_connected: bool
    blackhole: bool


@dataclass(frozen=True)
class RouteEntry:
    prefix: IPNetwork
    protocol: str  # "connected", "ospf", "static", "kernel", ...
    selected: bool  # best route for the prefix
    installed: bool  # in the kernel FIB
    distance: int
    metric: int
    nexthops: tuple[NextHop, ...]


def _nexthop(n: Any, w: str) -> NextHop:
    n = _dict(n, w)
    ip = n.get("ip")
    return NextHop(
        ip=None if ip is None else _addr(ip, w),
        interface=_opt_str(n, "interfaceName", w),
        active=bool(n.get("active", False)),
        fib=bool(n.get("fib", False)),
        directly_connected=bool(n.get("directlyConnected", False)),
        blackhole=bool(n.get("blackhole", False)) or bool(n.get("unreachable", False)),
    )


def parse_routes(text: str) -> dict[IPNetwork, tuple[RouteEntry, ...]]:
    """Parse `vtysh -c 'show ip route json'` or `show ipv6 route json` (FRR 8.4):
    prefix -> every route for it (several protocols may offer one; `selected` marks the best)."""
    what = "show ip route json"
    data = _dict(_vtysh_json(text, what), what)
    table: dict[IPNetwork, tuple[RouteEntry, ...]] = {}
    for key, entries in data.items():
        w = f"{what}: {key}"
        try:
            prefix = ipaddress.ip_network(key)
        except ValueError:
            raise ParseError(f"{w}: not a prefix") from None
        routes: list[RouteEntry] = []
        for r in _list(entries, w):
            r = _dict(r, w)
            routes.append(
                RouteEntry(
                    prefix=prefix,
                    protocol=_req(r, "protocol", str, w),
                    selected=bool(r.get("selected", False)),
                    installed=bool(r.get("installed", False)),
                    distance=_req(r, "distance", int, w),
                    metric=_req(r, "metric", int, w),
                    nexthops=tuple(_nexthop(n, w) for n in _list(r.get("nexthops", []), w)),
                )
            )
        table[prefix] = tuple(routes)
    return table


# --------------------------------------------------------------------------- ip -j route get


@dataclass(frozen=True)
class RouteGet:
    """The kernel's answer to `ip -j route get ADDR`.

    When the kernel refuses (no route, or a blackhole/unreachable/prohibit route), `error` holds
    its message ("Network is unreachable", "Invalid argument" for a blackhole, ...) and the
    other fields are None: `where` then reports "no route" rather than failing.
    """

    destination: IPAddress | None
    route_type: str | None  # "unicast", "local", "broadcast", ...; None on error
    gateway: IPAddress | None
    device: str | None
    source: IPAddress | None
    error: str | None = None

    @property
    def routed(self) -> bool:
        return self.error is None


_RTNETLINK_RE = re.compile(r"RTNETLINK answers: (.+)")


def parse_route_get(text: str) -> RouteGet:
    """Parse `ip -j route get ADDR` (iproute2 6.1): one JSON object in a list, or an RTNETLINK error."""
    what = "ip -j route get"
    body = text.strip()
    m = _RTNETLINK_RE.fullmatch(body)
    if m:
        return RouteGet(None, None, None, None, None, error=m.group(1))
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        raise ParseError(f"{what}: neither JSON nor an RTNETLINK error: {body[:200]!r}") from None
    items = _list(data, what)
    if len(items) != 1:
        raise ParseError(f"{what}: expected one route, got {len(items)}")
    r = _dict(items[0], what)
    gw = r.get("gateway")
    src = r.get("prefsrc")
    return RouteGet(
        destination=_addr(_req(r, "dst", str, what), what),
        route_type=str(r.get("type", "unicast")),
        gateway=None if gw is None else _addr(gw, what),
        device=_opt_str(r, "dev", what),
        source=None if src is None else _addr(src, what),
    )


# --------------------------------------------------------------------------- frr-reload.py --test


@dataclass(frozen=True)
class FrrReloadDiff:
    """What `frr-reload.py --test` says a reload would change. Empty means the running config
    already equals the file (the fixed point a deploy must reach)."""

    to_delete: tuple[str, ...]
    to_add: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.to_delete and not self.to_add


_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_FRR_LOG_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ +(INFO|WARNING|DEBUG): ")


def parse_frr_reload_test(text: str) -> FrrReloadDiff:
    """Parse `commands.frr_reload_test()` output. frr-reload.py exits 0 with or without changes,
    and on a syntax error it exits 1 yet still prints a diff as if the file were empty: an
    ERROR line therefore raises ParseError instead of returning that diff."""
    what = "frr-reload.py --test"
    sections: dict[str, list[str]] = {"Lines To Delete": [], "Lines To Add": []}
    current: list[str] | None = None
    lines = _ANSI_RE.sub("", strip_vtysh_noise(text)).splitlines()
    for idx, line in enumerate(lines):
        if " ERROR" in line or line.startswith("ERROR"):
            raise ParseError(f"{what}: {' '.join(lines[idx : idx + 2]).strip()}")
        if _FRR_LOG_RE.match(line):
            continue  # INFO/WARNING log lines, if the command ran without --log-level error
        if line in sections:
            current = sections[line]
            continue
        if re.fullmatch(r"=+", line) or not line.strip():
            continue
        if current is None:
            raise ParseError(f"{what}: unexpected line before any section: {line!r}")
        current.append(line)
    return FrrReloadDiff(tuple(sections["Lines To Delete"]), tuple(sections["Lines To Add"]))
