"""One lab host: a network namespace plus private mount and UTS namespaces, running sshd and FRR.

The recipe is LAB.md's: a holder process (`sleep infinity`) keeps the namespaces alive and is the
nsenter target; a private tmpfs /run keeps wireguard-go sockets and FRR's run files per host; /etc/frr and
/etc/wireguard are bind-mounted from the host dir so each host has its own configuration.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mesh_tasks.lab.errors import LabError

FRR_DAEMONS = ("zebra", "ospfd", "bfdd", "staticd")
FRR_USER = "frr"


def write_host_dir(host_dir: Path, name: str, management: str, authorized_keys: str) -> None:
    """Create the host's private files: sshd config, etc-frr, etc-wireguard (the host key is made apart)."""
    (host_dir / "etc-wireguard").mkdir(parents=True, exist_ok=True)
    os.chmod(host_dir / "etc-wireguard", 0o700)
    (host_dir / "authorized_keys").write_text(authorized_keys.strip() + "\n")
    (host_dir / "sshd_config").write_text(
        "\n".join(
            [
                f"ListenAddress {management}",
                "Port 22",
                f"HostKey {host_dir / 'ssh_host_ed25519_key'}",
                "PidFile /run/sshd.pid",
                # root's key lives in the lab; other logins (a sudo user) use their own ~/.ssh
                f"AuthorizedKeysFile {host_dir / 'authorized_keys'} .ssh/authorized_keys",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",  # the host dir may live under a 0700 temp dir owned by someone else
                "UseDNS no",
                "PrintMotd no",
                "X11Forwarding no",
                "MaxStartups 100:30:200",  # a parallel deploy opens many sessions at once
                "Subsystem sftp /usr/lib/openssh/sftp-server",
                "",
            ]
        )
    )
    _write_frr(host_dir / "etc-frr", name)


def _write_frr(etc_frr: Path, name: str) -> None:
    """FRR files for one host: the system's daemons file with our daemons on, a minimal integrated config."""
    etc_frr.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in Path("/etc/frr/daemons").read_text().splitlines():
        key = line.split("=", 1)[0]
        if key in FRR_DAEMONS:
            line = f"{key}=yes"
        lines.append(line)
    (etc_frr / "daemons").write_text("\n".join(lines) + "\n")
    (etc_frr / "frr.conf").write_text(f"hostname {name}\nservice integrated-vtysh-config\n")
    # vtysh prints "Can't open configuration file /etc/frr/vtysh.conf" into every output without one.
    (etc_frr / "vtysh.conf").write_text("service integrated-vtysh-config\n")
    for path in (etc_frr, *etc_frr.iterdir()):
        shutil.chown(path, FRR_USER, FRR_USER)
    os.chmod(etc_frr, 0o775)
    os.chmod(etc_frr / "frr.conf", 0o640)
    os.chmod(etc_frr / "vtysh.conf", 0o640)


def boot_script(host_dir: Path, name: str) -> str:
    """The shell run as the host's first process; it ends as the holder (`exec sleep infinity`)."""
    d = shlex.quote(str(host_dir))
    return "\n".join(
        [
            "set -e",
            f"hostname {shlex.quote(name)}",
            "mount -t tmpfs -o mode=0755 tmpfs /run",
            "mkdir -p /run/sshd /run/wireguard /run/frr /run/lock",
            "chown frr:frr /run/frr",
            f"mount --bind {d}/etc-frr /etc/frr",
            f"mount --bind {d}/etc-wireguard /etc/wireguard",
            # Its own /etc/hosts naming itself, as a real server has: sudo resolves the hostname and
            # would otherwise wait for a DNS timeout on every call.
            f"printf '127.0.0.1 localhost\\n127.0.1.1 %s\\n' {shlex.quote(name)} > {d}/hosts",
            f"mount --bind {d}/hosts /etc/hosts",
            # Its own root home, as a fresh server has (Debian's skeleton files): the lab machine's own
            # ~/.bashrc (pyenv, cargo, ...) would otherwise run in every SSH login and scp on every host.
            f"mkdir -p {d}/root && chmod 700 {d}/root",
            f"cp /etc/skel/.bashrc /etc/skel/.profile {d}/root/ 2>/dev/null || true",
            f"mount --bind {d}/root /root",
            # FRR's logs (frr-reload.log, crash logs) per host, when the package made the directory.
            f"mkdir -p {d}/log-frr && chown frr:frr {d}/log-frr",
            f"if [ -d /var/log/frr ]; then mount --bind {d}/log-frr /var/log/frr; fi",
            f"echo $$ > {d}/pid",
            f"/usr/sbin/sshd -f {d}/sshd_config -E {d}/sshd.log",
            f"/usr/lib/frr/frrinit.sh start > {d}/frr.log 2>&1",
            f"touch {d}/ready",
            "exec sleep infinity",
        ]
    )


def start_host(namespace: str, host_dir: Path, name: str) -> subprocess.Popen[bytes]:
    """Start the host's holder in its own session (it outlives `lab up`); its PID is the nsenter target."""
    for marker in ("pid", "ready"):
        (host_dir / marker).unlink(missing_ok=True)
    log = (host_dir / "boot.log").open("wb")
    try:
        return subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespace,
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "sh",
                "-c",
                boot_script(host_dir, name),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()


def same_netns(pid: int, namespace: str) -> bool:
    """Whether pid lives in the named network namespace (guards nsenter against a reused PID)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(f"/run/netns/{namespace}").st_ino
    except OSError:
        return False


def nsenter_argv(pid: int, cmd: Sequence[str] | str) -> list[str]:
    """Argv that runs cmd inside the host (mount, UTS and network namespaces of its holder)."""
    argv = ["nsenter", "-t", str(pid), "-m", "-u", "-n", "--"]
    if isinstance(cmd, str):
        return [*argv, "sh", "-c", cmd]
    if not cmd:
        raise LabError("empty command")
    return [*argv, *cmd]


def netns_pids(namespace: str) -> list[int]:
    """PIDs in a network namespace (`ip netns pids`): the only processes the lab ever signals."""
    proc = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return []
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
