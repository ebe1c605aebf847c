"""Parser for Asterisk's config dialect, pure: file contents come through a `Loader`.

Handles sections, templates (`[t](!)`, `[x](t1,t2)`, `[x](+)`), `#include`/`#tryinclude` (globs,
relative to the config directory as Asterisk resolves them, cycles detected), `=`, `=>`, `+=`,
`;` comments with `\\;` escapes, nested `;-- --;` block comments, and `#exec` (recorded, never run).
Problems become findings; the parser never raises on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from sipguard.audit.model import (
    Config,
    Directive,
    Entry,
    Finding,
    Section,
    Severity,
    SourceFile,
    Tree,
)

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_FILES = 2000
MAX_DEPTH = 20
MAX_LINES = 200_000
MAX_PARSE_FINDINGS = 50
MAX_SECTIONS = 20_000
MAX_INCLUDES = 500  # file inclusions per config: stops include bombs (each file includes *)

TOP_LEVEL = (
    "sip.conf",
    "pjsip.conf",
    "iax.conf",
    "manager.conf",
    "http.conf",
    "extensions.conf",
    "users.conf",
    "voicemail.conf",
    "rtp.conf",
    "logger.conf",
    "acl.conf",
)


class Loader(Protocol):
    """The parser's only view of the world. Names are relative to the config directory."""

    def read(self, name: str) -> bytes | None: ...

    def glob(self, pattern: str) -> list[str]: ...

    def resolve(self, argument: str) -> str | None:
        """Map an include argument to a name, or None when it lies outside the tree."""
        ...


def split_lines(text: str) -> list[str]:
    """Split on \\n only (as Asterisk counts lines), keeping endings: join() gives text back."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def strip_comment(raw: str, depth: int) -> tuple[str, list[int], int]:
    """Remove comments from one line. Returns content, raw column of each content char, depth."""
    out: list[str] = []
    cols: list[int] = []
    i, n = 0, len(raw)
    while i < n:
        if depth > 0:
            if raw.startswith("--;", i):
                depth -= 1
                i += 3
            elif raw.startswith(";--", i):
                depth += 1
                i += 3
            else:
                i += 1
            continue
        ch = raw[i]
        if ch == ";":
            if raw.startswith(";--", i):
                depth += 1
                i += 3
                continue
            break
        if ch == "\\" and raw.startswith(";", i + 1):
            out.append(";")
            cols.append(i)
            i += 2
            continue
        out.append(ch)
        cols.append(i)
        i += 1
    return "".join(out), cols, depth


def parse_assignment(content: str) -> tuple[str, str, str, int, int] | None:
    """`key op value` -> (key, op, value, value start, value end) in content columns."""
    eq = content.find("=")
    if eq <= 0:
        return None
    if content.startswith(">", eq + 1):
        op, key_end, val_start = "=>", eq, eq + 2
    elif content[eq - 1] == "+":
        op, key_end, val_start = "+=", eq - 1, eq + 1
    else:
        op, key_end, val_start = "=", eq, eq + 1
    key = content[:key_end].strip()
    if not key:
        return None
    rest = content[val_start:]
    value = rest.strip()
    start = val_start + (len(rest) - len(rest.lstrip()))
    return key, op, value, start, start + len(value)


def _directive_argument(text: str) -> str:
    arg = text.strip()
    if len(arg) >= 2 and (arg[0], arg[-1]) in (('"', '"'), ("<", ">")):
        arg = arg[1:-1].strip()
    return arg


@dataclass
class _State:
    config: Config
    current: Section | None = None
    stack: list[str] = field(default_factory=list)
    includes: int = 0
    truncated: bool = False
    last: dict[str, Section] = field(default_factory=dict)  # newest section of each name


class Parser:
    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self.tree = Tree()
        self._parse_errors: dict[str, int] = {}

    def finding(self, fid: str, sev: Severity, file: str, line: int, msg: str, fix: str) -> None:
        self.tree.findings.append(Finding(fid, sev, file, line, msg, fix))

    def load_file(self, name: str, file: str, line: int, required: bool) -> SourceFile | None:
        if name in self.tree.files:
            return self.tree.files[name]
        if len(self.tree.files) >= MAX_FILES:
            self.finding(
                "PARSE-LIMIT",
                Severity.LOW,
                file,
                line,
                f"more than {MAX_FILES} config files; {name} not read",
                "Reduce the number of included files.",
            )
            return None
        data = self.loader.read(name)
        if data is None:
            if required:
                self.finding(
                    "PARSE-INCLUDE-MISSING",
                    Severity.LOW,
                    file,
                    line,
                    f"included file {name} does not exist",
                    "Create the file, or use #tryinclude for optional files.",
                )
            return None
        if len(data) > MAX_FILE_BYTES:
            self.finding(
                "PARSE-LIMIT",
                Severity.LOW,
                name,
                1,
                f"{name} is larger than {MAX_FILE_BYTES} bytes; not parsed",
                "Split or trim the file.",
            )
            return None
        source = SourceFile(name, split_lines(data.decode("utf-8", "surrogateescape")))
        self.tree.files[name] = source
        return source

    def parse_config(self, name: str) -> Config | None:
        source = self.load_file(name, name, 1, required=False)
        if source is None:
            return None
        config = Config(name)
        self._walk(source, _State(config))
        self.tree.configs[name] = config
        return config

    def _parse_error(self, file: str, line: int, text: str) -> None:
        count = self._parse_errors.get(file, 0) + 1
        self._parse_errors[file] = count
        if count <= MAX_PARSE_FINDINGS:
            shown = text if len(text) <= 60 else text[:57] + "..."
            self.finding(
                "PARSE-SYNTAX",
                Severity.LOW,
                file,
                line,
                f"line not understood by the config parser: {shown!r}",
                "Fix or remove the line; Asterisk ignores it with a warning.",
            )

    def _walk(self, source: SourceFile, state: _State) -> None:
        state.stack.append(source.name)
        if source.name not in state.config.files:
            state.config.files.append(source.name)
        depth = 0
        for number, raw in enumerate(source.lines[:MAX_LINES], start=1):
            content, cols, depth = strip_comment(raw.rstrip("\r\n"), depth)
            text = content.strip()
            if not text:
                continue
            if text.startswith("["):
                self._header(text, source.name, number, state)
            elif text.startswith("#"):
                self._directive(text, source.name, number, state)
            else:
                self._assignment(content, cols, raw, source.name, number, state)
        if len(source.lines) > MAX_LINES:
            self.finding(
                "PARSE-LIMIT",
                Severity.LOW,
                source.name,
                MAX_LINES,
                f"file has more than {MAX_LINES} lines; the rest was not parsed",
                "Split or trim the file.",
            )
        if depth > 0:
            self.finding(
                "PARSE-COMMENT",
                Severity.LOW,
                source.name,
                len(source.lines),
                "block comment ';--' is never closed with '--;'",
                "Close the block comment.",
            )
        state.stack.pop()

    def _header(self, text: str, file: str, line: int, state: _State) -> None:
        close = text.find("]")
        if close < 0:
            self._parse_error(file, line, text)
            return
        name = text[1:close].strip()
        rest = text[close + 1 :].strip()
        options: list[str] = []
        if rest.startswith("(") and rest.endswith(")"):
            options = [o.strip() for o in rest[1:-1].split(",") if o.strip()]
        if "+" in options and name in state.last:
            state.current = state.last[name]
            state.current.reopened.append((file, line))
            return
        if len(state.config.sections) >= MAX_SECTIONS:
            if not state.truncated:
                state.truncated = True
                self.finding(
                    "PARSE-LIMIT",
                    Severity.LOW,
                    file,
                    line,
                    f"more than {MAX_SECTIONS} sections in {state.config.name}; the rest "
                    "were not parsed",
                    "Split the configuration.",
                )
            state.current = None
            return
        section = Section(name, file, line, template="!" in options)
        for parent in options:
            if parent in ("!", "+"):
                continue
            found = state.last.get(parent)
            if found is None:
                self.finding(
                    "PARSE-TEMPLATE-MISSING",
                    Severity.LOW,
                    file,
                    line,
                    f"[{name}] inherits from unknown template '{parent}'",
                    "Define the template before the section that uses it.",
                )
                continue
            section.parents.append(parent)
            section.inherited.extend(found.entries)
        state.config.sections.append(section)
        state.last[name] = section
        state.current = section

    def _directive(self, text: str, file: str, line: int, state: _State) -> None:
        word, _, arg_text = text[1:].partition(" ")
        kind = word.strip().lower()
        arg = _directive_argument(arg_text)
        state.config.directives.append(Directive(kind, arg, file, line))
        if kind == "exec":
            self.finding(
                "PARSE-EXEC",
                Severity.MEDIUM,
                file,
                line,
                f"#exec runs '{arg}' every time Asterisk loads this config",
                "Replace #exec with a static #include of the generated file.",
            )
            return
        if kind not in ("include", "tryinclude"):
            self._parse_error(file, line, text)
            return
        if len(state.stack) >= MAX_DEPTH:
            self.finding(
                "PARSE-LIMIT",
                Severity.LOW,
                file,
                line,
                f"includes nested deeper than {MAX_DEPTH}; '{arg}' not followed",
                "Flatten the include hierarchy.",
            )
            return
        if any(c in arg for c in "*?["):
            names = sorted(self.loader.glob(arg))
        else:
            resolved = self.loader.resolve(arg)
            if resolved is None:
                self.finding(
                    "PARSE-INCLUDE-OUTSIDE",
                    Severity.INFO,
                    file,
                    line,
                    f"'{arg}' lies outside the audited directory; not followed",
                    "Audit that file too, or keep includes inside the config directory.",
                )
                return
            names = [resolved]
        for name in names:
            if name in state.stack:
                chain = " -> ".join([*state.stack, name])
                self.finding(
                    "PARSE-INCLUDE-CYCLE",
                    Severity.MEDIUM,
                    file,
                    line,
                    f"include cycle: {chain}",
                    "Remove the #include that points back to an including file.",
                )
                continue
            if state.includes >= MAX_INCLUDES:
                self.finding(
                    "PARSE-LIMIT",
                    Severity.LOW,
                    file,
                    line,
                    f"more than {MAX_INCLUDES} inclusions in {state.config.name}; "
                    f"'{name}' not followed",
                    "Remove repeated or recursive #include lines.",
                )
                return
            source = self.load_file(name, file, line, required=kind == "include")
            if source is not None:
                state.includes += 1
                self._walk(source, state)

    def _assignment(
        self, content: str, cols: list[int], raw: str, file: str, line: int, state: _State
    ) -> None:
        parsed = parse_assignment(content)
        if parsed is None:
            self._parse_error(file, line, content.strip())
            return
        key, op, value, start, end = parsed
        if state.current is None:
            count = self._parse_errors.get(file, 0) + 1
            self._parse_errors[file] = count
            if state.truncated or count > MAX_PARSE_FINDINGS:
                return
            self.finding(
                "PARSE-NO-SECTION",
                Severity.LOW,
                file,
                line,
                f"'{key}' appears before any [section]; Asterisk ignores it",
                "Move the option into a section.",
            )
            return
        col = cols[start] if start < len(cols) else len(raw)
        if end > start:
            last = cols[end - 1]
            col_end = last + (2 if raw.startswith("\\;", last) else 1)
        else:
            col_end = col
        state.current.own.append(Entry(key, value, op, file, line, col, col_end))


def parse_tree(loader: Loader, names: tuple[str, ...] = TOP_LEVEL) -> Tree:
    parser = Parser(loader)
    for name in names:
        parser.parse_config(name)
    return parser.tree
