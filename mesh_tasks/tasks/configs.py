"""Nornir tasks that read a node, render its files and push them.

    nr.run(task=gather_node)                      # keys (made on the node) + current managed files
    nr.run(task=render_configs)                   # the node's files from templates/ (nornir-jinja2)
    nr.run(task=push_configs, files=..., current=...)   # atomic install + apply, or a diff on dry_run

Each is a plain `def task(task: Task, ...) -> Result`; `deploy` in mesh_tasks.workflow composes them.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from dataclasses import dataclass
from importlib.resources import files as package_files

from nornir.core.task import Result, Task
from nornir_jinja2.plugins.tasks import template_file

from mesh_tasks.core.diff import diff_files
from mesh_tasks.core.plan import NodePlan
from mesh_tasks.core.render import FRR_CONF, PRIVATE_KEY, WIREGUARD_DIR, environment, render_jobs
from mesh_tasks.host.commands import HostCommand
from mesh_tasks.tasks.remote import RemoteError, checked, put_bytes, run_batch, run_one

MANAGED_MARK = "# Managed by mesh_tasks"
FILE_MARK = "@@file "


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What a node has now. Never holds a private key: managed files contain none (and are filtered)."""

    public_key: str | None
    files: dict[str, str]
    wireguard: str  # "kernel" | "wireguard-go" | "none"


def _key_command(create: bool) -> HostCommand:
    """The private key is generated on the node, mode 0600, and only its public half is printed."""
    make = (
        f"[ -s {PRIVATE_KEY} ] || {{ wg genkey > {PRIVATE_KEY}.tmp && mv {PRIVATE_KEY}.tmp {PRIVATE_KEY}; }}; "
        if create
        else ""
    )
    return HostCommand(
        "public_key",
        f"umask 077; mkdir -p {WIREGUARD_DIR}; {make}"
        f"if [ -s {PRIVATE_KEY} ]; then chmod 600 {PRIVATE_KEY}; wg pubkey < {PRIVATE_KEY}; fi",
    )


def _files_command(routed: bool) -> HostCommand:
    frr = f"[ -f {FRR_CONF} ] && {{ printf '{FILE_MARK}%s\\n' {FRR_CONF}; cat {FRR_CONF}; }}; " if routed else ""
    return HostCommand(
        "managed_files",
        f'for f in {WIREGUARD_DIR}/*.conf; do [ -f "$f" ] || continue; '
        f"head -n 1 \"$f\" | grep -qF '{MANAGED_MARK}' || continue; "
        f"printf '{FILE_MARK}%s\\n' \"$f\"; sed '/^[[:space:]]*PrivateKey/d' \"$f\"; done; {frr}true",
    )


WIREGUARD_KIND = HostCommand(
    "wireguard",
    "if [ -d /sys/module/wireguard ] || modprobe -nq wireguard 2>/dev/null; then echo kernel; "
    "elif command -v wireguard-go >/dev/null; then echo wireguard-go; else echo none; fi",
)


def parse_files(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(FILE_MARK):
            current = out.setdefault(line[len(FILE_MARK) :].strip(), [])
        elif current is not None:
            current.append(line)
    return {path: "\n".join(lines) + "\n" for path, lines in out.items()}


def gather_node(task: Task, create_key: bool = True) -> Result:
    """One round trip: make sure the node has a key pair (unless dry-run), read its managed files."""
    plan: NodePlan = task.host["plan"]
    create = create_key and not task.is_dry_run()
    sections = run_batch(task, [_key_command(create), _files_command(plan.ospf is not None), WIREGUARD_KIND])
    key = checked(sections, "public_key").strip() or None
    facts = NodeFacts(key, parse_files(checked(sections, "managed_files")), checked(sections, "wireguard").strip())
    if facts.wireguard == "none":
        raise RemoteError("neither kernel WireGuard nor wireguard-go is available: install wireguard-go")
    return Result(host=task.host, result=facts, changed=create and key != plan.public_key)


def render_configs(task: Task, plan: NodePlan | None = None, mesh_name: str = "mesh") -> Result:
    """Render a node's files through nornir-jinja2 with the same environment as core.render."""
    plan = plan or task.host["plan"]
    rendered = {}
    for template, dest, variables in render_jobs(plan, mesh_name):
        sub = task.run(task=template_file, template=template, jinja_env=environment(), severity_level=10, **variables)
        rendered[dest] = sub.result
    return Result(host=task.host, result=rendered)


def bundle(files: dict[str, str]) -> bytes:
    """The node's complete managed set plus apply.sh, as one archive: one SCP, one apply."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        script = package_files("mesh_tasks.host").joinpath("apply.sh").read_bytes()
        entries = {"apply.sh": script, **{f"files{p}": t.encode() for p, t in sorted(files.items())}}
        stage = tarfile.TarInfo("files")  # always there: an empty set means "remove every managed interface"
        stage.type, stage.mode, stage.mtime = tarfile.DIRTYPE, 0o700, int(time.time())
        tar.addfile(stage)
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def push_configs(task: Task, files: dict[str, str], current: dict[str, str]) -> Result:
    """Install `files` atomically and apply them without dropping tunnels; on dry_run only diff.

    `files` is the node's whole managed set: managed interfaces missing from it are removed.
    """
    changes = diff_files(current, files, label=f"{task.host.name}:")
    diff = "".join(c.diff for c in changes)
    if not changes or task.is_dry_run():
        return Result(host=task.host, changed=bool(changes), diff=diff, result=[])
    archive = f"/var/tmp/mesh_tasks-{task.host.name}-{uuid.uuid4().hex[:12]}.tgz"  # unique: /var/tmp may be shared
    put_bytes(task, bundle(files), archive)
    output = run_one(
        task,
        "apply",
        f'd=$(mktemp -d /var/tmp/mesh_tasks.XXXXXX) && tar -xzf {archive} -C "$d" && sh "$d/apply.sh" "$d"; '
        f'rc=$?; rm -rf "$d" {archive}; exit $rc',
        read_timeout=180,
    )
    actions = [line.strip() for line in output.splitlines() if line.strip() and line.strip() != "apply-ok"]
    return Result(host=task.host, changed=True, diff=diff, result=actions)
