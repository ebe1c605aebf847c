"""The import layers in pyproject.toml ([tool.importlinter]) hold, and a planted violation fails.

`lint-imports` runs on the source tree as it is, then on a copy of it with one forbidden import
added, and must fail naming the contract that import breaks.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT.exists(), reason=f"{LINT} missing: install the dev extra (scripts/install-deps --dev)"
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH first: the tree under test, not the editable install, is the one analysed
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT), "--no-cache", str(root / "pyproject.toml")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _contracts() -> dict[str, dict[str, object]]:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        doc = tomllib.load(fh)
    return {c["id"]: c for c in doc["tool"]["importlinter"]["contracts"]}


def test_the_tree_keeps_every_contract() -> None:
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
    assert "KEPT" in proc.stdout


@pytest.mark.parametrize("contract", ["packages", "pure", "audit"])
def test_every_package_has_a_place_in_the_layers(contract: str) -> None:
    # a new package must be placed (and so constrained) deliberately, not left out of a contract
    layers = _contracts()[contract]["layers"]
    assert isinstance(layers, list)
    placed = {name for layer in layers for name in re.findall(r"[a-z_]+", layer)}
    src = ROOT / "src" / "sipguard"
    packages = {p.parent.name for p in src.glob("*/__init__.py")} | {"__main__"}
    assert packages <= placed, f"not in the {contract!r} contract: {sorted(packages - placed)}"


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        # the pure core reaching up to the composition root
        ("core/clock.py", "import sipguard.daemon.app", "pure stack: core imports nothing else"),
        # an adapter importing the command line
        ("sensor/workers.py", "import sipguard.cli.main", "package layers: no circles"),
        # two adapters importing each other
        (
            "store/schema.py",
            "import sipguard.sources.base",
            "sources, actions, store, fleet, metrics, notify never",
        ),
        # an adapter using the policy (actions did, for the reconcile set algebra now in core)
        (
            "actions/nftables.py",
            "import sipguard.policy.decide",
            "sources, actions, store, metrics, notify import only",
        ),
        # the fleet reaching for another adapter's packet sensor
        ("fleet/config.py", "import sipguard.sensor.state", "fleet imports only core, config"),
        # the sensor reaching into the daemon's store
        ("sensor/state.py", "import sipguard.store.schema", "the sensor uses no adapter but"),
        # the pure pipeline stack reaching for files
        ("policy/decide.py", "import sipguard.data", "pure stack: core imports nothing else"),
        # the circle that actions/base.py was caught in
        ("actions/tools.py", "import sipguard.actions.conntrack", "actions: backends on the"),
    ],
)
def test_a_planted_violation_fails_naming_its_contract(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        ROOT / "src",
        tmp_path / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    target = tmp_path / "src" / "sipguard" / module
    assert target.exists(), target
    target.write_text(target.read_text(encoding="utf-8") + f"\n{planted}  # planted\n")
    proc = _lint(tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    broken = [line for line in out.splitlines() if line.endswith("BROKEN")]
    assert any(line.startswith(contract) for line in broken), out
    importer = "sipguard." + module.removesuffix(".py").replace("/", ".")
    assert importer in out, out
