"""The shell commands the controller runs on a host, as data, and how to batch them.

Every string here is exactly what goes over SSH. Parsers for their output live in
`mesh_tasks.host.parsers`.

netmiko's linux driver returns no exit codes, and each round trip costs ~90 ms, so a host's
commands go out as ONE line built by `batch()`, and `split_batch()` cuts the answer back into
per-command sections with their exit codes:

    text = conn.send_command(batch(VERIFY_COMMANDS), cmd_verify=False)
    sections = split_batch(text, expected=VERIFY_COMMANDS)
    dump = parse_wg_dump(sections["wg_dump"].text)

`cmd_verify=False` is required: the batch line is longer than the terminal, the shell's echo
of it comes back wrapped, and netmiko's echo check times out (measured, netmiko 4.8). The
leftover echo is harmless: `split_batch` only reads between its markers, which never occur
literally in the echo. Measured on the lab: 4 verify commands in one batch 0.15 s, one plain
round trip 0.09 s.

Secrets: `wg show all dump` prints the interface private key and every preshared key. The
command below replaces them ON THE HOST with `REDACTED` ("(none)" stays "(none)", so the
controller still learns whether a key is set); lines of an unexpected shape are replaced by
a marker instead of being passed through. The controller never receives a private key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "BFD_PEERS",
    "DEFAULT_TOKEN",
    "FRR_STATE",
    "IPV6_ROUTES",
    "IP_ROUTES",
    "OSPF_INTERFACES",
    "OSPF_NEIGHBORS",
    "REDACTED",
    "UNEXPECTED_LINE",
    "VERIFY_COMMANDS",
    "WG_ALLOWED_IPS",
    "WG_DUMP",
    "BatchError",
    "HostCommand",
    "Section",
    "batch",
    "frr_reload_test",
    "route_get",
    "split_batch",
    "wg_allowed_ips",
]

REDACTED = "(redacted)"
"""Stands in for a private or preshared key in the output of `WG_DUMP`."""

UNEXPECTED_LINE = "(unexpected line with"
"""Prefix of the line `WG_DUMP` prints instead of a dump line that has neither 5 nor 9 fields."""

DEFAULT_TOKEN = "mtq7"
"""Part of every section marker; change it per call if the output could contain the default."""

_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9]{1,32}")
_IFACE_RE = re.compile(r"[A-Za-z0-9_=+.-]{1,15}")
_PATH_RE = re.compile(r"/[A-Za-z0-9_./-]+")


@dataclass(frozen=True)
class HostCommand:
    """One command: `name` keys its section in `split_batch`, `shell` is one line of POSIX sh.

    The shell line must be complete on its own (no trailing `#` comment, no unbalanced quotes):
    `batch()` wraps it in a subshell.
    """

    name: str
    shell: str

    def __post_init__(self) -> None:
        if not _NAME_RE.fullmatch(self.name):
            raise ValueError(f"command name {self.name!r}: use 1-64 of [A-Za-z0-9_.:-]")
        if not self.shell.strip() or "\n" in self.shell or "\r" in self.shell:
            raise ValueError(f"command {self.name!r}: shell must be one non-empty line")


# awk (mawk on Debian) filter; runs on the host. `wg` exit status is carried through the pipe
# by an extra line because dash has no pipefail; awk exits with it.
_WG_DUMP_AWK = (
    'BEGIN{FS=OFS="\\t"} '
    "/^__wg_rc=/{rc=substr($0,9)+0;next} "
    f'NF==5{{if($2!="(none)")$2="{REDACTED}"}} '
    f'NF==9{{if($3!="(none)")$3="{REDACTED}"}} '
    f'NF!=5&&NF!=9{{$0="{UNEXPECTED_LINE} " NF " fields)"}} '
    "{print} END{exit rc}"
)

WG_DUMP = HostCommand(
    "wg_dump",
    '{ wg show all dump || echo "__wg_rc=$?"; } | awk \'' + _WG_DUMP_AWK + "'",
)
"""`wg show all dump` with private and preshared keys replaced on the host (see module doc)."""

OSPF_NEIGHBORS = HostCommand("ospf_neighbors", "vtysh -c 'show ip ospf neighbor json'")
OSPF_INTERFACES = HostCommand("ospf_interfaces", "vtysh -c 'show ip ospf interface json'")
BFD_PEERS = HostCommand("bfd_peers", "vtysh -c 'show bfd peers json'")
IP_ROUTES = HostCommand("ip_routes", "vtysh -c 'show ip route json'")
IPV6_ROUTES = HostCommand("ipv6_routes", "vtysh -c 'show ipv6 route json'")
WG_ALLOWED_IPS = HostCommand("wg_allowed_ips", "wg show all allowed-ips")

FRR_STATE = HostCommand(
    "frr_state",
    "vtysh -c 'show ip ospf neighbor json' -c 'show bfd peers json' -c 'show ip route json'",
)
"""The three routed-mode queries in one vtysh start (split with parsers.split_json_documents)."""

VERIFY_COMMANDS: tuple[HostCommand, ...] = (WG_DUMP, OSPF_NEIGHBORS, BFD_PEERS, IP_ROUTES)
"""What verification reads after a deploy, in one round trip."""


def route_get(address: str) -> HostCommand:
    """`ip -j route get ADDRESS`: which route and device the host would use (named `route_get:ADDR`)."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError as exc:
        raise ValueError(f"route_get: {address!r} is not an IP address") from exc
    return HostCommand(f"route_get:{addr}", f"ip -j route get {addr}")


def wg_allowed_ips(interface: str) -> HostCommand:
    """`wg show IFACE allowed-ips` (named `wg_allowed_ips:IFACE`)."""
    if not _IFACE_RE.fullmatch(interface):
        raise ValueError(f"wg_allowed_ips: {interface!r} is not a valid interface name")
    return HostCommand(f"wg_allowed_ips:{interface}", f"wg show {interface} allowed-ips")


def frr_reload_test(path: str = "/etc/frr/frr.conf") -> HostCommand:
    """`frr-reload.py --test PATH`: the lines a reload would change (exit 0 even if some)."""
    if not _PATH_RE.fullmatch(path):
        raise ValueError(f"frr_reload_test: {path!r} is not a plain absolute path")
    return HostCommand(
        "frr_reload_test",
        f"cd / && /usr/lib/frr/frr-reload.py --test --log-level error {path}",
    )


class Section(NamedTuple):
    """One command's result from a batch: exit status and its output (stdout and stderr)."""

    rc: int
    text: str


class BatchError(ValueError):
    """The batch output is incomplete or inconsistent (truncated read, wrong token, ...)."""


def batch(commands: Sequence[HostCommand], token: str = DEFAULT_TOKEN) -> str:
    """One shell line that runs every command and frames its output with markers.

    Each command runs in a subshell with stdin from /dev/null and stderr merged into stdout.
    The markers are printed via printf format strings, so the command's own echo (which
    netmiko may leave in its output) never matches a marker line.
    """
    if not _TOKEN_RE.fullmatch(token):
        raise ValueError(f"batch token {token!r}: use 1-32 of [A-Za-z0-9]")
    if not commands:
        raise ValueError("batch: no commands")
    seen: set[str] = set()
    parts: list[str] = []
    for cmd in commands:
        if cmd.name in seen:
            raise ValueError(f"batch: duplicate command name {cmd.name!r}")
        seen.add(cmd.name)
        parts.append(
            f"printf '\\n@@%s-begin %s\\n' {token} {cmd.name}; "
            f"( {cmd.shell} ) </dev/null 2>&1; "
            f"printf '\\n@@%s-end %s rc=%s\\n' {token} {cmd.name} \"$?\""
        )
    return "; ".join(parts)


_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[=>]")


def _normalise(output: str) -> list[str]:
    text = _ANSI_RE.sub("", output).replace("\r\n", "\n")
    # lone CRs (terminal redraws) at line ends or starts carry nothing
    return [line.strip("\r") for line in text.split("\n")]


def split_batch(
    output: str,
    expected: Iterable[HostCommand | str] | None = None,
    token: str = DEFAULT_TOKEN,
) -> dict[str, Section]:
    """Cut the output of `batch()` into `{name: Section(rc, text)}`.

    Anything outside the markers (command echo, prompts, bracketed-paste escapes) is ignored.
    Raises BatchError for a section that starts but never ends, a name seen twice, or a
    command in `expected` that has no section (e.g. netmiko stopped reading too early).
    """
    begin_re = re.compile(rf"@@{re.escape(token)}-begin (\S+)")
    end_re = re.compile(rf"@@{re.escape(token)}-end (\S+) rc=(\d+)")
    sections: dict[str, Section] = {}
    current: str | None = None
    body: list[str] = []
    for line in _normalise(output):
        if current is None:
            m = begin_re.fullmatch(line)
            if m:
                current, body = m.group(1), []
                if current in sections:
                    raise BatchError(f"section {current!r} appears twice")
            continue
        end = end_re.fullmatch(line)
        if end:
            if end.group(1) != current:
                raise BatchError(f"section {current!r} closed by a marker for {end.group(1)!r}")
            # the end marker is printed after a newline of its own, so the body lines are
            # exactly output.split("\n"): joining them restores the output byte for byte
            text = "\n".join(body)
            sections[current] = Section(int(end.group(2)), text)
            current = None
            continue
        if begin_re.fullmatch(line):
            raise BatchError(f"section {current!r} has no end marker before the next section")
        body.append(line)
    if current is not None:
        raise BatchError(f"section {current!r} has no end marker (output truncated?)")
    if expected is not None:
        names = [e.name if isinstance(e, HostCommand) else e for e in expected]
        missing = [n for n in names if n not in sections]
        if missing:
            raise BatchError(f"no output for {', '.join(missing)}")
    return sections
