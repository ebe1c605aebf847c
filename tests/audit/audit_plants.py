"""Reads `; PLANT: ID ID` markers from fixture trees: the findings each tree must produce."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
TREES = ("chansip", "freepbx", "pjsip", "clean")


def planted(tree: str) -> set[tuple[str, str, int]]:
    root = FIXTURES / tree
    out = set()
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", "surrogateescape")
        for number, line in enumerate(text.split("\n"), start=1):
            _, marker, ids = line.partition("PLANT:")
            if marker:
                for fid in ids.split():
                    out.add((fid, path.relative_to(root).as_posix(), number))
    return out
