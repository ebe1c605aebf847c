"""Data types shared by the audit parser, checks and writers.

Every value keeps the file and line it was written on, so findings and edits point at source lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r} (one of {names})") from None


@dataclass(frozen=True, slots=True)
class Finding:
    id: str
    severity: Severity
    file: str
    line: int
    message: str
    fix: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "severity": self.severity.label,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class Entry:
    """One `key = value` (or `=>`, `+=`) line. `col`/`end` delimit the raw value in the line."""

    key: str
    value: str
    op: str
    file: str
    line: int
    col: int = 0
    end: int = 0


@dataclass(slots=True)
class Section:
    name: str
    file: str
    line: int
    template: bool = False
    parents: list[str] = field(default_factory=list)
    own: list[Entry] = field(default_factory=list)
    inherited: list[Entry] = field(default_factory=list)
    reopened: list[tuple[str, int]] = field(default_factory=list)  # `[name](+)` headers

    @property
    def entries(self) -> list[Entry]:
        return self.inherited + self.own

    def values(self, key: str) -> list[Entry]:
        """All entries for `key`, in order; `+=` appends to the previous value."""
        out: list[Entry] = []
        for entry in self.entries:
            if entry.key.lower() != key.lower():
                continue
            if entry.op == "+=" and out:
                prev = out.pop()
                merged = Entry(
                    prev.key,
                    prev.value + entry.value,
                    prev.op,
                    entry.file,
                    entry.line,
                    entry.col,
                    entry.end,
                )
                out.append(merged)
            else:
                out.append(entry)
        return out

    def get(self, key: str) -> Entry | None:
        """The effective (last) value of a single-valued option."""
        found = self.values(key)
        return found[-1] if found else None

    def value(self, key: str, default: str = "") -> str:
        entry = self.get(key)
        return entry.value if entry else default


@dataclass(slots=True)
class Directive:
    kind: str  # include, tryinclude, exec
    argument: str
    file: str
    line: int


@dataclass(slots=True)
class Config:
    """One top-level config file (e.g. sip.conf) with its includes resolved."""

    name: str
    sections: list[Section] = field(default_factory=list)
    directives: list[Directive] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def objects(self) -> list[Section]:
        """Sections that are real objects (templates excluded)."""
        return [s for s in self.sections if not s.template]

    def section(self, name: str) -> Section | None:
        for sec in self.sections:
            if sec.name == name and not sec.template:
                return sec
        return None

    def by_type(self, kind: str) -> list[Section]:
        return [s for s in self.objects() if s.value("type").lower() == kind]


@dataclass(slots=True)
class SourceFile:
    """Raw lines of one file, line endings kept, so writing back yields the same bytes."""

    name: str
    lines: list[str]

    def render(self) -> bytes:
        return "".join(self.lines).encode("utf-8", "surrogateescape")


@dataclass(slots=True)
class Tree:
    files: dict[str, SourceFile] = field(default_factory=dict)
    configs: dict[str, Config] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def config(self, name: str) -> Config | None:
        return self.configs.get(name)
