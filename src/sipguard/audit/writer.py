"""The I/O edge of `audit` and `harden`: read a config directory, write the hardened copy."""

from __future__ import annotations

import csv
import difflib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sipguard.audit.checks import run_checks
from sipguard.audit.harden import Plan, plan_hardening
from sipguard.audit.loader import DirLoader
from sipguard.audit.logs import registered_addresses
from sipguard.audit.model import Finding, Tree
from sipguard.audit.parser import parse_tree

BACKUP_SUFFIX = ".sipguard-bak"
MAX_LOG_LINES = 5_000_000


def audit_dir(path: str | os.PathLike[str]) -> tuple[Tree, list[Finding]]:
    tree = parse_tree(DirLoader(path))
    return tree, run_checks(tree)


def read_registrations(paths: list[str]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = (line for n, line in enumerate(fh) if n < MAX_LOG_LINES)
            for name, addresses in registered_addresses(lines).items():
                merged.setdefault(name, set()).update(addresses)
    return merged


@dataclass
class HardenResult:
    plan: Plan
    changed: list[str]
    diff_path: Path
    credentials_path: Path


def unified_diff(tree: Tree, plan: Plan) -> str:
    chunks: list[str] = []
    for name in plan.edits.changed_files():
        old = tree.files[name].render() if name in tree.files else b""
        new = plan.edits.render(name)
        chunks.extend(
            difflib.unified_diff(
                old.decode("utf-8", "surrogateescape").splitlines(keepends=True),
                new.decode("utf-8", "surrogateescape").splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )
    return "".join(
        c if c.endswith("\n") else c + "\n\\ No newline at end of file\n" for c in chunks
    )


def _write_credentials(path: Path, plan: Plan) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["file", "section", "extension", "username", "secret"])
    for c in plan.credentials:
        writer.writerow([c.file, c.section, c.extension, c.username, c.secret])
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        fh.write(buf.getvalue())
    os.chmod(path, 0o600)


def harden_dir(
    config_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    logs: list[str] | None = None,
    in_place: bool = False,
) -> HardenResult:
    src = Path(config_dir)
    out = Path(out_dir)
    tree = parse_tree(DirLoader(src))
    plan = plan_hardening(tree, read_registrations(logs or []))
    created = not out.exists()
    if created:
        out.mkdir(parents=True, mode=0o700)  # the copy, the diff and the CSV hold new secrets
    # An edit may rewrite a line to what it already was (allowguest=no stays no).
    changed = [
        name
        for name in plan.edits.changed_files()
        if name not in tree.files or plan.edits.render(name) != tree.files[name].render()
    ]
    if in_place:
        target = src
        for name in changed:
            path = src / name
            backup = path.with_name(path.name + BACKUP_SUFFIX)
            if path.exists() and not backup.exists():  # a second run keeps the first original
                shutil.copy2(path, backup)
    else:
        target = out
        shutil.copytree(src, out, dirs_exist_ok=True, symlinks=True)
        if created:
            out.chmod(0o700)  # copytree copied the source directory's mode
    for name in changed:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if not in_place and path.is_symlink():
            path.unlink()  # a copied link would write through to the original
        path.write_bytes(plan.edits.render(name))
    diff_path = out / "hardening.diff"
    fd = os.open(diff_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(unified_diff(tree, plan))
    credentials = out / "credentials.csv"
    _write_credentials(credentials, plan)
    return HardenResult(plan, changed, diff_path, credentials)
