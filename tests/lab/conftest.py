"""Lab fixtures: real hosts for a test module, always torn down (finally + atexit as a safety net).

Lab tests never skip: on a machine that cannot run a lab (not root, wireguard-go missing) they fail
with the reason, because CI runs as root with everything scripts/setup.sh installs.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mesh_tasks.lab.errors import LabPreflightError
from mesh_tasks.lab.lab import Lab
from mesh_tasks.lab.safety import preflight
from mesh_tasks.lab.spec import LabSpec, spec_from_mesh
from mesh_tasks.lab.teardown import teardown

HERE = Path(__file__).parent
MINI_MESH = HERE / "mini_mesh.yaml"

LabFactory = Callable[..., Lab]


def require_lab_machine() -> None:
    """Fail (not skip) with the reason when this machine cannot run a lab."""
    try:
        preflight()
    except LabPreflightError as exc:
        pytest.fail(f"lab tests need root and the lab packages (scripts/setup.sh): {exc}", pytrace=False)


def load_spec(source: Path) -> LabSpec:
    from mesh_tasks.core.model import load_mesh

    return spec_from_mesh(load_mesh(source))


def _safe_teardown(state_dir: Path) -> None:
    try:
        teardown(state_dir)
    except Exception as exc:  # atexit: report, never raise
        print(f"lab teardown of {state_dir} failed: {exc}")


@pytest.fixture(scope="module")
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFactory]:
    """make(source_or_spec, **Lab.up kwargs) -> Lab; every lab made is torn down after the module."""
    made: list[Path] = []
    labs: list[Lab] = []

    def make(source: Path | LabSpec = MINI_MESH, **kwargs: Any) -> Lab:
        require_lab_machine()
        spec = source if isinstance(source, LabSpec) else load_spec(source)
        state_dir = tmp_path_factory.mktemp("lab")
        made.append(state_dir)
        atexit.register(_safe_teardown, state_dir)
        kwargs.setdefault("address_range", "auto")  # picked under the creation lock: labs run side by side
        lab = Lab.up(spec, state_dir, **kwargs)  # tears itself down if it fails
        labs.append(lab)
        return lab

    try:
        yield make
    finally:
        for lab in labs:
            try:
                lab.down()  # also reaps the host processes this process started
            except Exception as exc:
                print(f"lab down of {lab.state_dir} failed: {exc}")
        for state_dir in made:
            _safe_teardown(state_dir)


@pytest.fixture(scope="module")
def mini_lab(lab_factory: LabFactory) -> Lab:
    """The three-node lab of mini_mesh.yaml (hub1, spoke1, NATed spoke2), shared by a module."""
    return lab_factory(MINI_MESH)
