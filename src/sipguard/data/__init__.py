"""Data shipped with sipguard (scanner signatures, ...)."""

from __future__ import annotations

from importlib import resources


def read_lines(name: str) -> list[str]:
    """Non-empty, non-comment lines of a shipped data file."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if line:
            out.append(line)
    return out


def scanner_signatures() -> list[str]:
    return read_lines("scanners.txt")
