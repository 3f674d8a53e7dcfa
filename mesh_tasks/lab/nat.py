"""A NAT router: one more namespace between a node and the underlay, masquerading like a home router.

Only connections the node starts get through (conntrack); nothing from the underlay can open one to the
node. Conntrack timeouts are per namespace, so a test can make a mapping expire in seconds.
"""

from __future__ import annotations

from mesh_tasks.lab.commands import run

UDP_TIMEOUT = "net.netfilter.nf_conntrack_udp_timeout"
UDP_STREAM_TIMEOUT = "net.netfilter.nf_conntrack_udp_timeout_stream"

RULESET = """\
table ip mesh_lab_nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "eth0" masquerade
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "eth0" accept
    }
}
"""


def configure_router(namespace: str) -> None:
    """Turn on forwarding and load the masquerade/stateful-forward ruleset inside the router namespace."""
    run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    run(["ip", "netns", "exec", namespace, "nft", "-f", "-"], input=RULESET)


def set_timeouts(namespace: str, udp: int | None = None, stream: int | None = None) -> None:
    """Set the router's UDP conntrack timeouts (seconds); None leaves a value as it is."""
    for key, value in ((UDP_TIMEOUT, udp), (UDP_STREAM_TIMEOUT, stream)):
        if value is not None:
            run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", f"{key}={int(value)}"])


def timeouts(namespace: str) -> tuple[int, int]:
    """The router's (udp, udp_stream) conntrack timeouts in seconds."""
    out = run(["ip", "netns", "exec", namespace, "sysctl", "-n", UDP_TIMEOUT, UDP_STREAM_TIMEOUT]).stdout.split()
    return int(out[0]), int(out[1])
