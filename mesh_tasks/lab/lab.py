"""The Lab: bring real hosts up from a LabSpec, run things inside them, break them on purpose, tear down.

`Lab.up` builds in an order that makes failure cheap: plan and safety checks first (nothing created), then
the intent is saved, then root-namespace objects in one `ip -batch`, then per-host work in parallel. Any
failure tears down whatever the state file lists, so an exception never leaves a half lab behind.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh_tasks.lab import host as hostmod
from mesh_tasks.lab import keys, nat
from mesh_tasks.lab.addressing import DEFAULT_RANGE, HostPlan, LabPlan, plan_lab, route_metric
from mesh_tasks.lab.commands import ip_batch, run
from mesh_tasks.lab.errors import LabError
from mesh_tasks.lab.overlay import write_overlay
from mesh_tasks.lab.safety import check_lab_range, creation_lock, free_range, preflight, root_routes
from mesh_tasks.lab.spec import LabSpec
from mesh_tasks.lab.state import HostState, LabState
from mesh_tasks.lab.teardown import PREFIX, TeardownReport, reap, teardown

Progress = Callable[[str], None]
FAULTS = ("wg-stop", "wg-start", "link-down", "link-up", "sshd-stop", "sshd-start", "nat-timeout")


@dataclass(frozen=True, slots=True)
class HostStatus:
    """A host as seen now: is its holder alive, which processes run in it."""

    name: str
    role: str
    management: str
    underlay: str | None
    nat: bool
    namespace: str
    pid: int | None
    up: bool
    processes: list[tuple[int, str]] = field(default_factory=list)
    router_up: bool | None = None

    def has(self, comm: str) -> bool:
        return any(name == comm for _, name in self.processes)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "management": self.management,
            "underlay": self.underlay,
            "nat": self.nat,
            "namespace": self.namespace,
            "pid": self.pid,
            "up": self.up,
            "router_up": self.router_up,
            "sshd": self.has("sshd"),
            "frr": self.has("zebra"),
            "processes": [{"pid": p, "name": n} for p, n in self.processes],
        }


def _workers(n: int) -> int:
    return max(1, min(32, n))


def _lan_lines(networks: Sequence[str]) -> list[str]:
    """A LAN per network: a veth pair kept inside the namespace (no dummy module here), first host address."""
    lines = []
    for k, text in enumerate(networks):
        net = ipaddress.ip_network(text)
        first = next(iter(net.hosts()), net.network_address)
        nodad = " nodad" if net.version == 6 else ""
        lines += [
            f"link add lan{k} type veth peer name lan{k}p",
            f"addr add {first}/{net.prefixlen} dev lan{k}{nodad}",
            f"link set lan{k} up",
            f"link set lan{k}p up",
        ]
    return lines


class Lab:
    """A running lab, known by its state dir. Create with `Lab.up`, reattach with `Lab.load`."""

    def __init__(self, state: LabState, procs: dict[str, subprocess.Popen[bytes]] | None = None) -> None:
        self.state = state
        self._procs = procs or {}

    # ---- life cycle -------------------------------------------------------------------------------

    @classmethod
    def up(
        cls,
        spec: LabSpec,
        state_dir: Path | str,
        *,
        address_range: ipaddress.IPv4Network | str = DEFAULT_RANGE,  # or "auto": first free /20 of it
        nat_timeout: int | None = None,
        nat_stream_timeout: int | None = None,
        ready_timeout: float = 60.0,
        progress: Progress | None = None,
    ) -> Lab:
        """Bring every host of spec up and wait until each answers SSH; tear down everything on failure."""
        say = progress or (lambda _msg: None)
        preflight()
        state_dir = Path(state_dir).resolve()
        auto = address_range == "auto"
        old = LabState.load(state_dir)
        if old is not None:
            raise LabError(f"a lab is already recorded in {state_dir} (status {old.status}): run `lab down` first")
        with creation_lock():
            address_range = free_range(DEFAULT_RANGE, 20) if auto else ipaddress.IPv4Network(address_range)
            # Overlap first: it is the refusal that matters most, and it must name the route it hit.
            check_lab_range(address_range, spec.overlay_prefixes, root_routes())
            plan = plan_lab(spec, state_dir, address_range)
            leftovers = _leftovers(plan.lab_id)
            if leftovers:
                raise LabError(
                    f"leftovers of an earlier lab with id {plan.lab_id} exist ({', '.join(leftovers[:5])}): "
                    f"run `lab down --state-dir {state_dir}` first"
                )
            state = _intent(plan, spec, state_dir)
            state.save()
            lab = cls(state)
            try:
                say(f"creating {len(plan.namespaces)} namespaces, bridges and links")
                ip_batch(_root_lines(plan, spec))
            except BaseException:
                lab.down()
                raise
        try:
            lab._build(plan, spec, nat_timeout, nat_stream_timeout, ready_timeout, say)
        except BaseException:
            say("start failed: tearing down")
            lab.down()
            raise
        return lab

    def _build(
        self,
        plan: LabPlan,
        spec: LabSpec,
        nat_timeout: int | None,
        nat_stream_timeout: int | None,
        ready_timeout: float,
        say: Progress,
    ) -> None:
        state = self.state
        sd = Path(state.state_dir)
        (sd / "client").mkdir(parents=True, exist_ok=True)
        os.chmod(sd / "client", 0o700)
        client_pub = keys.generate_key(Path(state.client_key), f"mesh_tasks-lab-{plan.lab_id}")
        hosts = list(state.hosts.values())
        with ThreadPoolExecutor(_workers(len(hosts))) as pool:
            say("writing host files and keys")
            host_keys = dict(
                zip(
                    [h.management for h in hosts],
                    pool.map(lambda h: self._prepare_host(h, client_pub), hosts),
                    strict=True,
                )
            )
            keys.write_known_hosts(Path(state.known_hosts), host_keys)
            say("addressing hosts")
            list(pool.map(lambda h: self._address_host(plan.host(h.name), h), hosts))
            for h in hosts:
                if h.router_namespace:
                    nat.set_timeouts(h.router_namespace, nat_timeout, nat_stream_timeout or nat_timeout)
            say(f"starting {len(hosts)} hosts (sshd, FRR)")
            for h in hosts:
                self._procs[h.name] = hostmod.start_host(h.namespace, Path(h.host_dir), h.name)
            deadline = time.monotonic() + ready_timeout
            pids = list(pool.map(lambda h: self._wait_ready(h, deadline), hosts))
        for h, pid in zip(hosts, pids, strict=True):
            h.pid = pid
        write_overlay(Path(state.overlay), hosts, Path(state.client_key), Path(state.known_hosts))
        state.status = "up"
        state.save()

    def _prepare_host(self, h: HostState, client_pub: str) -> str:
        host_dir = Path(h.host_dir)
        hostmod.write_host_dir(host_dir, h.name, h.management, client_pub)
        return keys.generate_key(host_dir / "ssh_host_ed25519_key", f"{h.name}-lab-host")

    def _address_host(self, p: HostPlan, h: HostState) -> None:
        lines = ["link set lo up", f"addr add {p.management}/24 dev mgmt0", "link set mgmt0 up"]
        if p.nat:
            lines += [
                f"addr add {p.private}/24 dev eth0",
                "link set eth0 up",
                f"route add default via {p.router_private}",
            ]
        else:
            lines += [f"addr add {p.underlay}/24 dev eth0", "link set eth0 up"]
        lines += _lan_lines(h.networks)
        ip_batch(lines, netns=p.namespace)
        if p.router_namespace:
            ip_batch(
                [
                    "link set lo up",
                    f"addr add {p.public}/24 dev eth0",
                    "link set eth0 up",
                    f"addr add {p.router_private}/24 dev lan0",
                    "link set lan0 up",
                ],
                netns=p.router_namespace,
            )
            nat.configure_router(p.router_namespace)

    def _wait_ready(self, h: HostState, deadline: float) -> int:
        """Wait for the boot marker, then for sshd to accept a strict-host-key login."""
        host_dir = Path(h.host_dir)
        proc = self._procs.get(h.name)
        while not (host_dir / "ready").exists():
            if proc is not None and proc.poll() is not None:
                log = (host_dir / "boot.log").read_text(errors="replace")[-2000:]
                raise LabError(f"host {h.name} failed to boot (exit {proc.returncode}): {log.strip()}")
            if time.monotonic() > deadline:
                raise LabError(f"host {h.name} did not boot in time; see {host_dir}/boot.log")
            time.sleep(0.05)
        pid = int((host_dir / "pid").read_text())
        last = ""
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((h.management, 22), timeout=1):
                    pass
            except OSError as exc:
                last = str(exc)
                time.sleep(0.05)
                continue
            res = self.ssh(h.name, "true", timeout=10)
            if res.returncode == 0:
                return pid
            last = res.stderr.strip()
            time.sleep(0.1)
        raise LabError(f"host {h.name} ({h.management}) does not answer SSH: {last}")

    @classmethod
    def load(cls, state_dir: Path | str) -> Lab:
        """Reattach to a lab brought up earlier (maybe by another process) from its state file."""
        state_dir = Path(state_dir).resolve()
        state = LabState.load(state_dir)
        if state is None:
            raise LabError(f"no lab recorded in {state_dir} (no readable state.json)")
        return cls(state)

    def down(self) -> TeardownReport:
        """Remove everything this lab created; idempotent."""
        report = teardown(Path(self.state.state_dir), self.state)
        reap(self._procs.values())
        self._procs.clear()
        self.state.status = "down"
        return report

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---- facts ------------------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return Path(self.state.state_dir)

    @property
    def overlay_path(self) -> Path:
        return Path(self.state.overlay)

    @property
    def key_file(self) -> Path:
        return Path(self.state.client_key)

    @property
    def known_hosts(self) -> Path:
        return Path(self.state.known_hosts)

    @property
    def nodes(self) -> list[str]:
        return list(self.state.hosts)

    def host(self, node: str) -> HostState:
        try:
            return self.state.hosts[node]
        except KeyError:
            raise LabError(f"no host {node!r} in this lab (hosts: {', '.join(self.state.hosts)})") from None

    def management(self, node: str) -> str:
        """The management (SSH) address of node."""
        return self.host(node).management

    def underlay(self, node: str) -> str:
        """The underlay address peers reach node at (its NAT router's public address when NATed)."""
        addr = self.host(node).underlay
        assert addr is not None
        return addr

    @property
    def management_addresses(self) -> dict[str, str]:
        return {name: h.management for name, h in self.state.hosts.items()}

    def pid(self, node: str) -> int:
        """The holder PID of node, checked to still be in node's namespace (PIDs get reused)."""
        h = self.host(node)
        pid = h.pid
        if pid is None:
            try:
                pid = int((Path(h.host_dir) / "pid").read_text())
            except (OSError, ValueError):
                raise LabError(f"host {node} has no holder process recorded") from None
        if not hostmod.same_netns(pid, h.namespace):
            raise LabError(f"host {node} is not running (PID {pid} is not in namespace {h.namespace})")
        return pid

    # ---- running things ---------------------------------------------------------------------------

    def exec(
        self,
        node: str,
        cmd: Sequence[str] | str,
        *,
        check: bool = False,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd inside node (mount, UTS, network namespaces); a str runs through `sh -c`."""
        argv = hostmod.nsenter_argv(self.pid(node), cmd)
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise LabError(f"{node}: {cmd!r} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def spawn(self, node: str, cmd: Sequence[str] | str, **popen: Any) -> subprocess.Popen[str]:
        """Start a long-running cmd inside node; read its output later (`proc.send_signal`, `communicate`).

        It lives in node's namespace, so `down` ends it too if the caller forgets.
        """
        popen.setdefault("stdout", subprocess.PIPE)
        popen.setdefault("stderr", subprocess.PIPE)
        popen.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(hostmod.nsenter_argv(self.pid(node), cmd), text=True, **popen)

    def router_exec(self, node: str, cmd: Sequence[str], *, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run cmd inside node's NAT router namespace (e.g. `conntrack -L`, `nft list ruleset`)."""
        ns = self._router(node)
        return subprocess.run(
            ["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout, check=False
        )

    def ssh(self, node: str, cmd: str, *, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run cmd on node over SSH exactly as the controller would (overlay key, strict known_hosts)."""
        argv = [*keys.ssh_argv(self.management(node), self.key_file, self.known_hosts), cmd]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 255, "", f"ssh timed out after {timeout}s")

    # ---- status -----------------------------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        out = []
        for h in self.state.hosts.values():
            try:
                pid: int | None = self.pid(h.name)
            except LabError:
                pid = None
            procs = sorted((p, hostmod.process_name(p)) for p in hostmod.netns_pids(h.namespace))
            router_up = None
            if h.router_namespace:
                router_up = Path(f"/run/netns/{h.router_namespace}").exists()
            out.append(
                HostStatus(
                    name=h.name,
                    role=h.role,
                    management=h.management,
                    underlay=h.underlay,
                    nat=h.nat,
                    namespace=h.namespace,
                    pid=pid,
                    up=pid is not None,
                    processes=procs,
                    router_up=router_up,
                )
            )
        return out

    # ---- faults -----------------------------------------------------------------------------------

    def wg_stop(self, node: str) -> list[str]:
        """Set every WireGuard interface of node down, remembering which were up (for wg_start)."""
        names = self.exec(node, ["wg", "show", "interfaces"], check=True).stdout.split()
        stopped = []
        for name in names:
            link = json.loads(self.exec(node, ["ip", "-j", "link", "show", "dev", name], check=True).stdout)
            if link and "UP" in link[0].get("flags", []):
                self.exec(node, ["ip", "link", "set", "dev", name, "down"], check=True)
                stopped.append(name)
        h = self.host(node)
        h.wg_stopped = sorted(set(h.wg_stopped) | set(stopped))
        self.state.save()
        return stopped

    def wg_start(self, node: str) -> list[str]:
        """Bring back up the WireGuard interfaces wg_stop set down."""
        h = self.host(node)
        started = []
        for name in h.wg_stopped:
            if self.exec(node, ["ip", "link", "set", "dev", name, "up"]).returncode == 0:
                started.append(name)
        h.wg_stopped = []
        self.state.save()
        return started

    def link_down(self, node: str) -> None:
        """Cut node's underlay cable at the far end (bridge port, or its NAT router's LAN leg)."""
        self._underlay_cable(node, "down")

    def link_up(self, node: str) -> None:
        self._underlay_cable(node, "up")

    def _underlay_cable(self, node: str, updown: str) -> None:
        h = self.host(node)
        if h.router_namespace:
            run(["ip", "-n", h.router_namespace, "link", "set", "dev", "lan0", updown])
        else:
            run(["ip", "link", "set", "dev", h.underlay_link, updown])

    def sshd_stop(self, node: str) -> int:
        """Stop node's sshd listener by its PID (sessions already open stay, as on a real server)."""
        h = self.host(node)
        text = self.exec(node, ["cat", "/run/sshd.pid"]).stdout.strip()
        if not text.isdigit():
            raise LabError(f"{node}: sshd is not running (no /run/sshd.pid)")
        pid = int(text)
        if pid not in hostmod.netns_pids(h.namespace):
            raise LabError(f"{node}: PID {pid} from /run/sshd.pid is not in the host")
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists() or hostmod.process_name(pid) != "sshd":
                break
            time.sleep(0.02)
        self.exec(node, ["rm", "-f", "/run/sshd.pid"])
        return pid

    def sshd_start(self, node: str) -> None:
        """Start node's sshd again (daemonizes; PID in the host's /run/sshd.pid)."""
        d = self.host(node).host_dir
        self.exec(node, ["/usr/sbin/sshd", "-f", f"{d}/sshd_config", "-E", f"{d}/sshd.log"], check=True)

    def set_nat_timeout(self, node: str, udp: int | None, stream: int | None = None) -> None:
        """Set the UDP conntrack timeouts of node's NAT router; stream defaults to udp (both matter)."""
        nat.set_timeouts(self._router(node), udp, stream if stream is not None else udp)

    def nat_timeouts(self, node: str) -> tuple[int, int]:
        """(udp, udp_stream) conntrack timeouts of node's NAT router, in seconds."""
        return nat.timeouts(self._router(node))

    def _router(self, node: str) -> str:
        ns = self.host(node).router_namespace
        if not ns:
            raise LabError(f"{node} is not behind NAT (nat: false)")
        return ns

    def fault(self, node: str, action: str, *, seconds: int | None = None, stream: int | None = None) -> str:
        """Apply a named fault (the CLI's `lab fault NODE ACTION`); returns what was done."""
        if action == "wg-stop":
            return f"{node}: set down {', '.join(self.wg_stop(node)) or 'nothing (no WireGuard interface up)'}"
        if action == "wg-start":
            return f"{node}: set up {', '.join(self.wg_start(node)) or 'nothing (none stopped)'}"
        if action == "link-down":
            self.link_down(node)
            return f"{node}: underlay link down"
        if action == "link-up":
            self.link_up(node)
            return f"{node}: underlay link up"
        if action == "sshd-stop":
            return f"{node}: sshd (PID {self.sshd_stop(node)}) stopped"
        if action == "sshd-start":
            self.sshd_start(node)
            return f"{node}: sshd started"
        if action == "nat-timeout":
            if seconds is None:
                raise LabError("nat-timeout needs --seconds")
            self.set_nat_timeout(node, seconds, stream)
            udp, st = self.nat_timeouts(node)
            return f"{node}: NAT UDP timeout {udp}s, stream {st}s"
        raise LabError(f"unknown fault {action!r} (one of {', '.join(FAULTS)})")


def _leftovers(lid: str) -> list[str]:
    """Namespaces or links of this lab id that already exist (a crashed lab not yet torn down)."""
    mine = f"{PREFIX}{lid}"
    ns = run(["ip", "netns", "list"], check=False).stdout.split("\n")
    names = [line.split()[0] for line in ns if line.strip() and line.startswith(mine)]
    links = json.loads(run(["ip", "-j", "link", "show"], check=False).stdout or "[]")
    names += [e["ifname"] for e in links if str(e.get("ifname", "")).startswith(mine)]
    return names


def _intent(plan: LabPlan, spec: LabSpec, state_dir: Path) -> LabState:
    """The state file as it will be once up, saved before anything exists so down can always finish."""
    hosts_dir = state_dir / "hosts"
    state = LabState(
        state_dir=str(state_dir),
        lab_id=plan.lab_id,
        address_range=str(plan.address_range),
        root_address=str(plan.root_address),
        bridges=[plan.mgmt_bridge, plan.underlay_bridge],
        root_links=plan.root_links,
        namespaces=plan.namespaces,
        routes=[{"prefix": str(p), "metric": route_metric(plan.lab_id)} for p in spec.overlay_prefixes],
        client_key=str(state_dir / "client" / "id_ed25519"),
        known_hosts=str(state_dir / "known_hosts"),
        overlay=str(state_dir / "overlay.yaml"),
        files=[
            str(hosts_dir),
            str(state_dir / "client"),
            str(state_dir / "known_hosts"),
            str(state_dir / "overlay.yaml"),
        ],
    )
    for p in plan.hosts:
        node = spec.node(p.name)
        state.hosts[p.name] = HostState(
            name=p.name,
            namespace=p.namespace,
            host_dir=str(hosts_dir / p.name),
            management=str(p.management),
            underlay=str(p.reachable_underlay),
            nat=p.nat,
            has_endpoint=node.has_endpoint,
            role=node.role,
            router_namespace=p.router_namespace,
            private=str(p.private) if p.private else None,
            router_private=str(p.router_private) if p.router_private else None,
            underlay_link=p.underlay_link,
            networks=[str(n) for n in node.networks],
        )
    return state


def _root_lines(plan: LabPlan, spec: LabSpec) -> list[str]:
    """Every root-namespace change of `lab up`, for one `ip -batch` (bridges, namespaces, veths, routes)."""
    mg, ul = plan.mgmt_bridge, plan.underlay_bridge
    lines = [
        # No IPv6 link-local on root-side lab links: nothing of the lab shows up in the root's routes but
        # the management /24 and the blackholes.
        f"link add {mg} type bridge",
        f"link set {mg} addrgenmode none",
        f"addr add {plan.root_address} dev {mg}",
        f"link set {mg} up",
        f"link add {ul} type bridge",
        f"link set {ul} addrgenmode none",
        f"link set {ul} up",
    ]
    for h in plan.hosts:
        lines += [
            f"netns add {h.namespace}",
            f"link add {h.mgmt_link} type veth peer name mgmt0 netns {h.namespace}",
            f"link set {h.mgmt_link} addrgenmode none",
            f"link set {h.mgmt_link} master {mg}",
            # Isolated ports reach the root namespace but not each other: hosts cannot bypass the
            # underlay (or a NAT) over the management network.
            f"link set {h.mgmt_link} type bridge_slave isolated on",
            f"link set {h.mgmt_link} up",
        ]
        far = h.router_namespace or h.namespace
        if h.router_namespace:
            lines += [
                f"netns add {h.router_namespace}",
                f"link add lan0 netns {h.router_namespace} type veth peer name eth0 netns {h.namespace}",
            ]
        lines += [
            f"link add {h.underlay_link} type veth peer name eth0 netns {far}",
            f"link set {h.underlay_link} addrgenmode none",
            f"link set {h.underlay_link} master {ul}",
            f"link set {h.underlay_link} up",
        ]
    metric = route_metric(plan.lab_id)
    lines += [f"route add blackhole {p} metric {metric}" for p in spec.overlay_prefixes]
    return lines
