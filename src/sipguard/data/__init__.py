"""Data shipped with sipguard (scanner signatures, ...)."""

from __future__ import annotations

from pathlib import Path

#: the package's own directory: sipguard is installed as files (wheel or editable), and
#: importlib.resources would cost every command ~8 ms of imports (zipfile among them)
HERE = Path(__file__).resolve().parent


def read_lines(name: str) -> list[str]:
    """Non-empty, non-comment lines of a shipped data file."""
    text = HERE.joinpath(name).read_text(encoding="utf-8")
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if line:
            out.append(line)
    return out


def scanner_signatures() -> list[str]:
    return read_lines("scanners.txt")
