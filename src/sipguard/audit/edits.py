"""Minimal line edits on parsed config files: untouched lines and comments survive byte for byte."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipguard.audit.model import Entry, Section, SourceFile, Tree

MARK = ";sipguard: "


def _ending(line: str) -> str:
    if line.endswith("\r\n"):
        return "\r\n"
    return "\n"


@dataclass
class FileEdits:
    replaced: dict[int, str] = field(default_factory=dict)  # line -> new text (no ending)
    inserted: dict[int, list[str]] = field(default_factory=dict)  # after line -> texts
    appended: list[str] = field(default_factory=list)


class EditSet:
    """Edits keyed by file and 1-based line of the *original* file; applied in one pass."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.files: dict[str, FileEdits] = {}
        self.created: dict[str, str] = {}

    def _edits(self, file: str) -> FileEdits:
        return self.files.setdefault(file, FileEdits())

    def text(self, file: str, line: int) -> str:
        edits = self.files.get(file)
        if edits is not None and line in edits.replaced:
            return edits.replaced[line]
        return self.tree.files[file].lines[line - 1].rstrip("\r\n")

    def replace_line(self, file: str, line: int, text: str) -> None:
        self._edits(file).replaced[line] = text

    def set_value(self, entry: Entry, value: str) -> None:
        current = self.text(entry.file, entry.line)
        self.replace_line(
            entry.file, entry.line, current[: entry.col] + value + current[entry.end :]
        )

    def insert_after(self, file: str, line: int, texts: list[str]) -> None:
        self._edits(file).inserted.setdefault(line, []).extend(texts)

    def append(self, file: str, texts: list[str]) -> None:
        self._edits(file).appended.extend(texts)

    def comment_out(self, file: str, line: int) -> None:
        current = self.text(file, line)
        if not current.startswith(MARK):
            self.replace_line(file, line, MARK + current)

    def comment_section(self, section: Section) -> None:
        """Neutralise a section: its header and every line it owns become comments."""
        self.comment_out(section.file, section.line)
        for entry in section.own:
            self.comment_out(entry.file, entry.line)

    def set_option(self, section: Section, key: str, value: str) -> None:
        """Set `key` in `section`: in place if the section itself writes it, else a new line."""
        own = [e for e in section.own if e.key.lower() == key.lower()]
        if own:
            self.set_value(own[-1], value)
        else:
            self.insert_after(section.file, section.line, [f"{key}={value}"])

    def create(self, file: str, text: str) -> None:
        self.created[file] = text

    def render(self, file: str) -> bytes:
        if file in self.created:
            return self.created[file].encode("utf-8", "surrogateescape")
        return "".join(apply(self.tree.files[file], self.files.get(file))).encode(
            "utf-8", "surrogateescape"
        )

    def changed_files(self) -> list[str]:
        return sorted(set(self.files) | set(self.created))


def apply(source: SourceFile, edits: FileEdits | None) -> list[str]:
    if edits is None:
        return list(source.lines)
    out: list[str] = []
    default_end = _ending(source.lines[0]) if source.lines else "\n"
    out.extend(t + default_end for t in edits.inserted.get(0, []))  # before the first line
    for number, raw in enumerate(source.lines, start=1):
        end = raw[len(raw.rstrip("\r\n")) :]
        line = edits.replaced[number] + end if number in edits.replaced else raw
        extra = edits.inserted.get(number, [])
        if extra and not end:
            line += default_end  # the file's last line had no newline; new lines follow it
        out.append(line)
        out.extend(t + (end or default_end) for t in extra)
    if edits.appended:
        if out and not out[-1].endswith("\n"):
            out[-1] += default_end
        out.extend(t + default_end for t in edits.appended)
    return out
