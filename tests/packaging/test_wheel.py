"""The wheel `pipx install` takes: built from the checkout, installed alone into a fresh venv (what
pipx does), its console script runs and the C normalizer is inside."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.slow


def test_wheel_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = tmp_path.glob("sipguard-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
    assert b"sipguard = sipguard.cli.main:main" in entry  # pipx exposes console scripts only
    assert any("/_fastlog." in n and n.endswith(".so") for n in names)
    assert any(n.endswith("rules/password-guessing/rule.toml") for n in names)  # data files too
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    res = subprocess.run(
        [str(venv / "bin/sipguard"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0 and res.stdout.startswith("sipguard "), res.stderr
    res = subprocess.run(
        [str(venv / "bin/sipguard"), "rules", "list", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0 and '"password-guessing"' in res.stdout, res.stderr
