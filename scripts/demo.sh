#!/usr/bin/env bash
# The main job on the embedded default, on a fresh machine (as root): install, build a lab of real
# hosts from inventory/mesh.yaml (network namespaces with sshd, wireguard-go and FRR), deploy the mesh
# over SSH, verify it, print the result, and tear the lab down (KEEP_LAB=1 keeps it for exploring).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh || exit 1
SOT=${SOT:-inventory/mesh.yaml}
STATE=$(dirname "$SOT")/.lab
py=.venv/bin/python
down() { [ "${KEEP_LAB:-0}" = 1 ] || $py -m mesh_tasks lab down --inventory "$SOT" --state-dir "$STATE"; }
trap down EXIT
$py -m mesh_tasks validate --inventory "$SOT" || exit 2
$py -m mesh_tasks lab up --inventory "$SOT" --state-dir "$STATE" --range auto || exit 1
$py -m mesh_tasks deploy --inventory "$SOT" --overlay "$STATE/overlay.yaml"; rc=$?
$py -m mesh_tasks verify --inventory "$SOT" --overlay "$STATE/overlay.yaml" || rc=1
[ "${KEEP_LAB:-0}" = 1 ] && echo "lab kept: python -m mesh_tasks lab down --state-dir $STATE"
exit $rc
