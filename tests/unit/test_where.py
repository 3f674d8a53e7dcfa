"""`where`: the planned owner of a destination, and its comparison with a live host's answer."""

from __future__ import annotations

import ipaddress

from mesh_tasks.core.verification import routed_next_hops
from mesh_tasks.core.where import Owner, planned_owner
from mesh_tasks.host.parsers import PeerAllowedIps, RouteGet
from mesh_tasks.where_cli import agree, live_owner

from .meshes import three_spokes_two_hubs, valid_plan

ADDR = ipaddress.ip_address("10.12.0.7")  # inside spoke2's network


def test_static_spoke_sends_other_spokes_to_the_primary_hub() -> None:
    plan = valid_plan(three_spokes_two_hubs())
    owner = planned_owner(plan, plan.node("spoke1"), ADDR)
    assert owner == Owner(False, frozenset({("wg0", "hub1")}), "10.12.0.0/24")
    assert planned_owner(plan, plan.node("spoke2"), ADDR).local


def test_static_shortcut_owns_the_destination_directly() -> None:
    plan = valid_plan(three_spokes_two_hubs(links=[["spoke1", "spoke2"]]))
    assert planned_owner(plan, plan.node("spoke1"), ADDR).hops == {("wg0", "spoke2")}


def test_nothing_owns_an_address_outside_the_mesh() -> None:
    plan = valid_plan(three_spokes_two_hubs())
    owner = planned_owner(plan, plan.node("spoke1"), ipaddress.ip_address("172.16.0.1"))
    assert not owner.local and not owner.hops
    assert "nowhere" in owner.describe()


def test_routed_mode_follows_the_cheapest_path() -> None:
    plan = valid_plan(three_spokes_two_hubs(routing="ospf"))
    plans = {n: plan.node(n) for n in plan.mesh.nodes}
    hops = routed_next_hops(plan, plans)
    owner = planned_owner(plan, plans["spoke1"], ADDR, hops["spoke1"])
    assert {peer for _, peer in owner.hops} == {"hub1"}  # cost 10 via hub1 beats 100 via hub2


def test_live_owner_and_disagreement() -> None:
    key1, key2 = "A" * 43 + "=", "B" * 43 + "="
    allowed = (
        PeerAllowedIps("wgt1", key1, (ipaddress.ip_network("10.0.0.0/8"),)),
        PeerAllowedIps("wgt5", key2, (ipaddress.ip_network("10.0.0.0/8"),)),
    )
    route = RouteGet(ADDR, "unicast", None, "wgt5", None)
    live = live_owner(ADDR, route, allowed, {key1: "hub1", key2: "hub2"})
    assert live.hops == {("wgt5", "hub2")}
    planned = Owner(False, frozenset({("wgt1", "hub1")}), "10.12.0.0/24")
    assert not agree(planned, live)
    assert agree(Owner(False, frozenset({("wgt1", "hub1"), ("wgt5", "hub2")}), None), live)  # ECMP
    refused = live_owner(ADDR, RouteGet(None, None, None, None, None, "Network is unreachable"), allowed, {})
    assert not refused.hops and not agree(planned, refused)
