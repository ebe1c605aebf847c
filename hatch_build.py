"""Build hook: compiles sipguard's C normalizer (src/sipguard/core/asterisk/fastlog/*.c).

The extension is an accelerator: `sipguard scan` uses it when it imports, the Python normalizer
otherwise (same results, slower). A machine without a C compiler or Python headers still gets a
working install, with a warning, unless SIPGUARD_REQUIRE_NATIVE=1 (CI) makes that an error.
`scripts/build-native` runs the same compile in place for development.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # scripts/build-native imports compile_native without hatchling
    BuildHookInterface = object  # type: ignore[assignment,misc]

PACKAGE = Path("src/sipguard/core/asterisk")
SOURCES = PACKAGE / "fastlog"
MODULE = "_fastlog"
CFLAGS = ["-O2", "-std=gnu11", "-fPIC", "-shared", "-Wall", "-Wextra", "-fvisibility=hidden"]


def target(root: Path) -> Path:
    return root / PACKAGE / (MODULE + sysconfig.get_config_var("EXT_SUFFIX"))


def compile_native(root: Path, extra: list[str] | None = None) -> Path:
    """Compile the extension next to its package; raises RuntimeError with the reason."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (install gcc)")
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        raise RuntimeError(f"no Python headers in {include} (install python3-dev)")
    sources = sorted(str(p) for p in (root / SOURCES).glob("*.c"))
    out = target(root)
    tmp = out.with_suffix(".tmp")
    cmd = [cc, *CFLAGS, *(extra or []), f"-I{include}", *sources, "-o", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr.strip()}")
    if proc.stderr.strip():
        print(proc.stderr.strip(), file=sys.stderr)
    tmp.replace(out)  # atomic: a running process keeps its old mapping
    return out


class NativeHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        try:
            so = compile_native(root)
        except RuntimeError as exc:
            if os.environ.get("SIPGUARD_REQUIRE_NATIVE") == "1":
                raise
            print(f"sipguard: C normalizer not built, using Python: {exc}", file=sys.stderr)
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(so)] = str(so.relative_to(root / "src"))
