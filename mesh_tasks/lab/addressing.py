"""Where every lab host lives: subnets carved from one configurable range, and unique short names.

Layout of a range R (default 198.18.0.0/15, the benchmarking range):
  first /24 of R           management bridge; the root namespace is .1, host i (1-based) is .10+i
  second /24 of R          underlay bridge (no root address); public host i / NAT router i is .10+i
  /24s of R's upper half   one private link per NATed node: router .1, node .2
Names start with `mtl` + a 4-hex lab id derived from the state dir, so two labs never share a name and a
crashed lab's leftovers can be found again from its state dir alone. Link names stay <= 15 characters.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from mesh_tasks.lab.errors import LabError, LabRangeError
from mesh_tasks.lab.spec import LabSpec

DEFAULT_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
MAX_HOSTS = 244  # .11 .. .254 of the management /24
IFNAMSIZ = 15


def lab_id(state_dir: Path) -> str:
    """A short id that is stable for a state dir: teardown can rebuild every name from it."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:4]


def route_metric(lid: str) -> int:
    """Per-lab metric for blackhole routes, so two labs with the same overlay never delete each other's."""
    return 3_000_000 + int(lid, 16)


@dataclass(frozen=True, slots=True)
class HostPlan:
    """Names and addresses of one lab host (and its NAT router, if any)."""

    name: str
    index: int
    namespace: str
    management: ipaddress.IPv4Address
    underlay: ipaddress.IPv4Address | None  # the host's own eth0 address (None when NATed)
    mgmt_link: str  # root-side veth on the management bridge
    underlay_link: str  # root-side veth on the underlay bridge (host's or its router's)
    nat: bool
    router_namespace: str | None = None
    public: ipaddress.IPv4Address | None = None  # router's underlay address
    private: ipaddress.IPv4Address | None = None  # node's eth0 behind the router
    router_private: ipaddress.IPv4Address | None = None

    @property
    def reachable_underlay(self) -> ipaddress.IPv4Address:
        """The underlay address peers see: the host's own, or its NAT router's."""
        addr = self.underlay if self.underlay is not None else self.public
        assert addr is not None
        return addr


@dataclass(frozen=True, slots=True)
class LabPlan:
    """Everything `lab up` will create, computed before anything is created."""

    lab_id: str
    address_range: ipaddress.IPv4Network
    management_subnet: ipaddress.IPv4Network
    underlay_subnet: ipaddress.IPv4Network
    root_address: ipaddress.IPv4Interface
    mgmt_bridge: str
    underlay_bridge: str
    hosts: tuple[HostPlan, ...]

    @property
    def namespaces(self) -> list[str]:
        out: list[str] = []
        for h in self.hosts:
            out.append(h.namespace)
            if h.router_namespace:
                out.append(h.router_namespace)
        return out

    @property
    def root_links(self) -> list[str]:
        return [name for h in self.hosts for name in (h.mgmt_link, h.underlay_link)]

    @property
    def used_subnets(self) -> list[ipaddress.IPv4Network]:
        subnets = [self.management_subnet, self.underlay_subnet]
        subnets += [ipaddress.IPv4Network(f"{h.private}/24", strict=False) for h in self.hosts if h.private]
        return subnets

    def host(self, name: str) -> HostPlan:
        for h in self.hosts:
            if h.name == name:
                return h
        raise LabError(f"no host {name!r} in this lab")


def plan_lab(spec: LabSpec, state_dir: Path, address_range: ipaddress.IPv4Network = DEFAULT_RANGE) -> LabPlan:
    """Carve the range and name everything; raise LabRangeError if the range cannot hold this lab."""
    if address_range.prefixlen > 22:
        raise LabRangeError(f"lab range {address_range} is too small: it needs at least a /22")
    if len(spec.nodes) > MAX_HOSTS:
        raise LabError(f"a lab holds at most {MAX_HOSTS} hosts, the spec has {len(spec.nodes)}")
    lid = lab_id(state_dir)
    lower, upper = address_range.subnets(prefixlen_diff=1)
    twenty_fours = lower.subnets(new_prefix=24)
    mgmt, underlay = next(twenty_fours), next(twenty_fours)
    nat_subnets = upper.subnets(new_prefix=24)
    hosts: list[HostPlan] = []
    for i, node in enumerate(spec.nodes, start=1):
        public = underlay.network_address + 10 + i
        private: ipaddress.IPv4Network | None = None
        if node.nat:
            private = next(nat_subnets, None)
            if private is None:
                raise LabRangeError(f"lab range {address_range} has no /24 left for NATed node {node.name}")
        hosts.append(
            HostPlan(
                name=node.name,
                index=i,
                namespace=f"mtl{lid}-{node.name}",
                management=mgmt.network_address + 10 + i,
                underlay=None if node.nat else public,
                mgmt_link=f"mtl{lid}m{i}",
                underlay_link=f"mtl{lid}u{i}",
                nat=node.nat,
                router_namespace=f"mtl{lid}r-{node.name}" if node.nat else None,
                public=public if node.nat else None,
                private=private.network_address + 2 if private else None,
                router_private=private.network_address + 1 if private else None,
            )
        )
    plan = LabPlan(
        lab_id=lid,
        address_range=address_range,
        management_subnet=mgmt,
        underlay_subnet=underlay,
        root_address=ipaddress.IPv4Interface(f"{mgmt.network_address + 1}/24"),
        mgmt_bridge=f"mtl{lid}-mg",
        underlay_bridge=f"mtl{lid}-ul",
        hosts=tuple(hosts),
    )
    too_long = [n for n in [plan.mgmt_bridge, plan.underlay_bridge, *plan.root_links] if len(n) > IFNAMSIZ]
    if too_long:
        raise LabError(f"interface names longer than {IFNAMSIZ} characters: {too_long}")
    return plan
