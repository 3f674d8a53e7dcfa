#!/usr/bin/env bash
# The whole test suite on a fresh machine (as root): install, lint, type-check, then every test tier
# (unit + property, captured-output parsers, real hosts in a lab). .ci/run calls exactly this.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh || exit 1
export PYTHONDONTWRITEBYTECODE=1
echo "== ruff" && .venv/bin/ruff check mesh_tasks tests benchmarks || exit 1
echo "== mypy --strict" && .venv/bin/mypy || exit 1
echo "== pytest"
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here, not a pass" >&2
    exit 1
fi
exit "$rc"
