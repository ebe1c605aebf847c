"""Dialplan reachability: which paid destinations can an unauthenticated caller dial?

From every context a stranger can land in (chan_sip guest context, PJSIP anonymous or auth-less
endpoint, IAX guest, `[default]`), follow `include =>`, `Goto`, `GotoIf`, `Gosub`, `GosubIf`,
`Macro` and `Dial(Local/…@ctx)`, and report each pattern that ends in a `Dial` through a trunk.
All priorities of an extension are treated as reachable (conservative: conditions are not solved).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

from sipguard.audit.checks_pjsip import unauthenticated_contexts
from sipguard.audit.checks_sip import iax_guest_context, sip_guest_context
from sipguard.audit.model import Config, Finding, Severity, Tree
from sipguard.audit.patterns import Token, is_paid, overlap, tokens

MAX_STATES = 20_000
SKIP_CONTEXTS = ("general", "globals")
JUMPS = ("goto", "gotoif", "gosub", "gosubif", "macro")
TRUNK_TECHS = ("dahdi", "zap", "dgv", "capi", "misdn", "ooh323", "h323", "motif", "skype")


@dataclass(slots=True)
class Step:
    exten: str
    priority: str
    app: str
    args: str
    file: str
    line: int

    def describe(self) -> str:
        return f"[{self.file}:{self.line}] {self.exten},{self.priority},{self.app}({self.args})"


@dataclass(slots=True)
class Context:
    name: str
    extens: dict[str, list[Step]] = field(default_factory=dict)
    includes: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Reach:
    entry: str
    why: str
    pattern: str
    file: str
    line: int
    path: tuple[str, ...]
    first: tuple[tuple[str, int], ...]  # lines in the entry context that open the path


def split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside ${…}, $[…] and parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "{([":
            depth += 1
        elif ch in "})]" and depth:
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _app_call(text: str) -> tuple[str, str]:
    text = text.strip()
    paren = text.find("(")
    if paren < 0:
        name, _, args = text.partition(",")
        return name.strip(), args.strip()
    end = text.rfind(")")
    return text[:paren].strip(), text[paren + 1 : end if end > paren else len(text)]


def build_contexts(config: Config) -> dict[str, Context]:
    contexts: dict[str, Context] = {}
    for section in config.sections:
        if section.name.lower() in SKIP_CONTEXTS:
            continue
        ctx = contexts.setdefault(section.name, Context(section.name))
        last = ""
        for entry in section.entries:
            key = entry.key.lower()
            if key == "include":
                target = re.split(r"[,|]", entry.value, maxsplit=1)[0].strip()
                ctx.includes.append((target, entry.file, entry.line))
                continue
            if key == "exten":
                parts = split_top(entry.value, ",")
                if len(parts) < 3:
                    continue
                last = parts[0].split("/", 1)[0].strip()
                priority, app_text = parts[1].strip(), ",".join(parts[2:])
            elif key == "same" and last:
                parts = split_top(entry.value, ",")
                if len(parts) < 2:
                    continue
                priority, app_text = parts[0].strip(), ",".join(parts[1:])
            else:
                continue
            if priority.lower() == "hint":
                continue
            app, args = _app_call(app_text)
            ctx.extens.setdefault(last, []).append(
                Step(last, priority, app, args, entry.file, entry.line)
            )
    return contexts


def jump_targets(step: Step, context: str) -> list[tuple[str, str]]:
    """(context, extension) pairs a jump application can continue in."""
    app = step.app.lower()
    args = step.args.replace("|", ",")
    if app == "macro":
        name = split_top(args, ",")[0].strip()
        return [(f"macro-{name}", "s")] if name else []
    branches = [args]
    if app in ("gotoif", "gosubif"):
        _, _, rest = args.partition("?")
        branches = split_top(rest, ":")
    out = []
    for branch in branches:
        parts = [p.strip() for p in split_top(branch, ",")]
        if app.startswith("gosub") and parts:
            parts[-1] = parts[-1].split("(", 1)[0]
        if len(parts) >= 3:
            out.append((parts[0], parts[1]))
        elif len(parts) == 2:
            out.append((context, parts[0]))
    return [(c, e) for c, e in out if c and e]


def dial_devices(step: Step) -> list[tuple[str, str]]:
    """("trunk", device) or ("local", context@exten) for each device in a Dial."""
    first = split_top(step.args.replace("|", ","), ",")[0]
    out = []
    for device in first.split("&"):
        tech, _, resource = device.strip().partition("/")
        low = tech.lower()
        if low == "local":
            exten, _, ctx = resource.split("/", 1)[0].partition("@")
            out.append(("local", f"{ctx}@{exten}"))
        elif (
            (low in ("sip", "iax2", "pjsip") and ("/" in resource or "@" in resource))
            or low in TRUNK_TECHS
            or (tech.startswith("${") and resource)
        ):
            out.append(("trunk", device.strip()))
    return out


def _next_number(exten: str, current: list[Token] | None) -> list[Token] | None:
    if exten == "${EXTEN}":
        return current
    if "$" in exten:
        return None  # unknown transformation: any extension in the target may run
    return tokens(exten)


def entry_points(tree: Tree, contexts: dict[str, Context]) -> list[tuple[str, str, str, int]]:
    """(context, why, file, line) of every way a stranger lands in a context; file and line are
    where the setting is written, often a `[general]` or a template every object inherits."""
    found: list[tuple[str, str, str, int]] = []
    sip = sip_guest_context(tree)
    if sip is not None:
        found.append((sip[0], "chan_sip guest calls (allowguest)", sip[1], sip[2]))
    iax = iax_guest_context(tree)
    if iax is not None:
        found.append((iax[0], "IAX2 guest user", iax[1], iax[2]))
    for why, ctx, file, line in unauthenticated_contexts(tree):
        found.append((ctx, why, file, line))
    if "default" in contexts:
        found.append(("default", "Asterisk's [default] context", "", 0))
    return found


def _entries(tree: Tree, contexts: dict[str, Context]) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for ctx, why, _, _ in entry_points(tree, contexts):
        entries.setdefault(ctx, []).append(why)
    return entries


def reachability(tree: Tree) -> list[Reach]:
    return _reachability(tree)[0]


def _reachability(tree: Tree) -> tuple[list[Reach], list[str]]:
    """Paths found, and the entry contexts whose search hit MAX_STATES."""
    config = tree.config("extensions.conf")
    if config is None:
        return [], []
    contexts = build_contexts(config)
    results: dict[tuple[str, str, int], Reach] = {}
    truncated = []
    for entry, whys in _entries(tree, contexts).items():
        if not _search(contexts, entry, "; ".join(whys), results):
            truncated.append(entry)
    return list(results.values()), truncated


def _search(
    contexts: dict[str, Context], entry: str, why: str, results: dict[tuple[str, str, int], Reach]
) -> bool:
    """Breadth-first search from `entry`; False when it stopped at MAX_STATES."""
    # Queue item: context, dialled-number pattern (None = any), origin step, path, opening lines.
    Item = tuple[str, list[Token] | None, Step | None, tuple[str, ...], tuple[tuple[str, int], ...]]
    queue: deque[Item] = deque([(entry, None, None, (f"{why} lands in [{entry}]",), ())])
    seen: set[tuple[str, str, str]] = set()
    while queue:
        if len(seen) >= MAX_STATES:
            return False
        name, number, origin, path, first = queue.popleft()
        key = (name, repr(number), f"{origin.file}:{origin.line}" if origin else "")
        ctx = contexts.get(name)
        if key in seen or ctx is None:
            continue
        seen.add(key)
        for target, file, line in ctx.includes:
            opening = first or ((file, line),)
            queue.append(
                (target, number, origin, (*path, f"[{file}:{line}] include => {target}"), opening)
            )
        for pattern, steps in ctx.extens.items():
            pat = tokens(pattern)
            if number is not None and not overlap(pat, number):
                continue
            here = origin or steps[0]
            cur = pat if number is None else number
            opening = first or tuple((s.file, s.line) for s in steps)
            paid = is_paid(tokens(here.exten)) or is_paid(cur)
            for step in steps:
                app = step.app.lower()
                trail = (*path, step.describe())
                if app == "dial":
                    for kind, device in dial_devices(step):
                        if kind == "trunk" and paid:
                            rkey = (entry, here.file, here.line)
                            results.setdefault(
                                rkey,
                                Reach(entry, why, here.exten, here.file, here.line, trail, opening),
                            )
                        elif kind == "local":
                            lctx, _, lext = device.partition("@")
                            queue.append((lctx, _next_number(lext, cur), here, trail, opening))
                elif app in JUMPS:
                    for tctx, text in jump_targets(step, name):
                        queue.append((tctx, _next_number(text, cur), here, trail, opening))
    return True


def check_dialplan(tree: Tree) -> list[Finding]:
    out = []
    found, truncated = _reachability(tree)
    for entry in truncated:
        out.append(
            Finding(
                "DP-TRUNCATED",
                Severity.MEDIUM,
                "extensions.conf",
                1,
                f"dialplan analysis from [{entry}] stopped after {MAX_STATES} states; paths "
                "beyond that were not checked",
                "Simplify the includes reachable from that context, or review it by hand.",
            )
        )
    for reach in found:
        out.append(
            Finding(
                "DP-TOLLFRAUD",
                Severity.CRITICAL,
                reach.file,
                reach.line,
                f"unauthenticated callers reach a paid destination with pattern '{reach.pattern}': "
                + " -> ".join(reach.path),
                f"Keep [{reach.entry}] to local extensions only: remove the include/Goto that "
                "leads to the trunk, or require authentication (allowguest=no, no anonymous "
                "endpoint).",
            )
        )
    config = tree.config("extensions.conf")
    if config is None:
        return out
    out.extend(_entry_findings(tree, build_contexts(config), found))
    for ctx in build_contexts(config).values():
        for pattern, steps in ctx.extens.items():
            if not is_paid(tokens(pattern)):
                continue
            if any("GROUP" in (s.app + s.args).upper() for s in steps):
                continue
            for step in steps:
                if step.app.lower() == "dial" and any(k == "trunk" for k, _ in dial_devices(step)):
                    out.append(
                        Finding(
                            "DP-CALLLIMIT",
                            Severity.MEDIUM,
                            step.file,
                            step.line,
                            f"[{ctx.name}] {pattern} dials out through a trunk without a "
                            "GROUP_COUNT limit on simultaneous calls",
                            "Before Dial: Set(GROUP(outbound)=${CHANNEL(peername)}) and "
                            "GotoIf($[${GROUP_COUNT(${CHANNEL(peername)}@outbound)} > 2]?busy).",
                        )
                    )
                    break
    return out


def _entry_findings(tree: Tree, contexts: dict[str, Context], found: list[Reach]) -> list[Finding]:
    """The setting that lets strangers in, reported where it is written (a context in sip.conf
    `[general]` is every guest's): DP-TOLLFRAUD names the dialplan line, this the door."""
    first: dict[str, Reach] = {}
    for path in sorted(found, key=lambda r: (r.file, r.line)):
        first.setdefault(path.entry, path)
    out = []
    for ctx, why, file, line in entry_points(tree, contexts):
        reach = first.get(ctx)
        if reach is None or not file:
            continue
        out.append(
            Finding(
                "DP-GUEST-PAID",
                Severity.CRITICAL,
                file,
                line,
                f"{why}: callers without a password land in [{ctx}], set here, which reaches a "
                f"paid destination ('{reach.pattern}' at {reach.file}:{reach.line})",
                f"Point it at a context that only reaches local extensions, or turn it off "
                f"(allowguest=no, no anonymous endpoint); keep [{ctx}] away from trunks.",
            )
        )
    return out
