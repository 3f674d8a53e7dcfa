#!/usr/bin/env bash
# Prepare this machine for mesh_tasks and its lab of real hosts. Idempotent; run as root from the repo:
#
#   sudo scripts/setup.sh
#
# 1. Debian packages the lab needs (skips apt entirely when all are present).
# 2. Keeps the root namespace's own FRR from running: lab hosts run their own FRR in their namespaces.
#    (A root-namespace sshd does not interfere: lab sshd listen inside their own namespaces. It is left
#    as it is, so this script never locks anyone out.)
# 3. .venv in the repo root (created if missing) with `pip install -e '.[dev]'`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
PACKAGES=(wireguard-tools wireguard-go frr frr-pythontools openssh-server openssh-client nftables iproute2
          iputils-ping procps sudo)

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: must run as root (the lab creates namespaces, bridges and mounts)" >&2
    exit 1
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done
# The venv module is packaged apart on Debian; only needed if the chosen python lacks it.
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null && [ ! -x "$REPO/.venv/bin/python" ]; then
    installed python3-venv || missing+=(python3-venv)
fi

if [ "${#missing[@]}" -eq 0 ]; then
    say "packages: all present, skipping apt"
else
    say "packages: installing ${missing[*]}"
    # Do not let package scripts start services in the root namespace while installing (standard
    # policy-rc.d: exit 101 = "not allowed"); an existing policy is left alone.
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    apt-get update -q
    say "apt-get install ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Root-namespace FRR off: not started now, not started at boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    if systemctl is-enabled --quiet frr 2>/dev/null || systemctl is-active --quiet frr 2>/dev/null; then
        say "frr: disabling and stopping the root-namespace service (systemd)"
        systemctl disable --now frr
    else
        say "frr: root-namespace service not enabled (systemd)"
    fi
else
    if [ -x /etc/init.d/frr ] && /etc/init.d/frr status >/dev/null 2>&1; then
        say "frr: stopping the root-namespace service (init.d)"
        /etc/init.d/frr stop || true
    fi
    if command -v update-rc.d >/dev/null 2>&1 && ls /etc/rc?.d/S*frr >/dev/null 2>&1; then
        say "frr: removing it from boot (update-rc.d disable)"
        update-rc.d frr disable >/dev/null 2>&1 || true
    fi
    say "frr: root-namespace service not running (no systemd here)"
fi
command -v wireguard-go >/dev/null || { echo "setup: wireguard-go missing after install" >&2; exit 1; }

cd "$REPO"
if [ -x .venv/bin/python ]; then
    say "venv: $REPO/.venv exists"
else
    say "venv: creating $REPO/.venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
say "pip install -e '.[dev]'"
.venv/bin/python -m pip install -q -e '.[dev]'
say "done: try 'sudo .venv/bin/python -m mesh_tasks lab up --inventory inventory/mesh.yaml'"
