"""Dialplan edits for `sipguard harden`: cut guest paths to trunks, add per-device call limits.

The call limit counts each calling device's outbound calls in a GROUP and hangs up above
OUTBOUND_CALL_LIMIT. It is added only where it cannot shift existing priorities: the Dial is at
priority `n` (or at `1`, which becomes `n`) and every other priority of that extension is `n`.
"""

from __future__ import annotations

import re

from sipguard.audit.dialplan import build_contexts, dial_devices, reachability
from sipguard.audit.edits import EditSet
from sipguard.audit.model import Tree
from sipguard.audit.patterns import is_paid, tokens

OUTBOUND_CALL_LIMIT = 2
DEVICE = "${CUT(CHANNEL(name),-,1)}"  # SIP/2001-00000a1 -> SIP/2001, for any channel driver
SET_GROUP = f"Set(GROUP(sipguard-out)={DEVICE})"
CHECK_GROUP = (
    f"ExecIf($[${{GROUP_COUNT({DEVICE}@sipguard-out)}} > {OUTBOUND_CALL_LIMIT}]?Hangup(34))"
)
FIRST_PRIORITY = re.compile(r"^(\s*exten\s*=>?\s*[^,]+,\s*)1(\s*,)")
N_PRIORITY = re.compile(r"^n(\(.*\))?$")


def cut_default_paths(tree: Tree, edits: EditSet) -> list[str]:
    """[default] stays an entry point after harden: comment out what opens a path to a trunk."""
    notes = []
    for reach in reachability(tree):
        if reach.entry != "default":
            continue
        for file, line in reach.first:
            edits.comment_out(file, line)
        notes.append(
            f"[default]: commented out the path to '{reach.pattern}' ({reach.file}:{reach.line})"
        )
    return notes


def add_call_limits(tree: Tree, edits: EditSet) -> list[str]:
    config = tree.config("extensions.conf")
    if config is None:
        return []
    notes = []
    for ctx in build_contexts(config).values():
        for pattern, steps in ctx.extens.items():
            if not is_paid(tokens(pattern)) or any(
                "GROUP" in (s.app + s.args).upper() for s in steps
            ):
                continue
            dial = next(
                (
                    s
                    for s in steps
                    if s.app.lower() == "dial" and any(k == "trunk" for k, _ in dial_devices(s))
                ),
                None,
            )
            if dial is None:
                continue
            others = [s for s in steps[1:] if s is not dial]
            raw = edits.text(dial.file, dial.line)
            safe = all(N_PRIORITY.match(s.priority) for s in others) and f"{pattern}/" not in raw
            if safe and N_PRIORITY.match(dial.priority):
                lines = [f"exten => {pattern},n,{SET_GROUP}", f"exten => {pattern},n,{CHECK_GROUP}"]
            elif safe and dial.priority == "1" and dial is steps[0] and FIRST_PRIORITY.match(raw):
                lines = [f"exten => {pattern},1,{SET_GROUP}", f"exten => {pattern},n,{CHECK_GROUP}"]
                edits.replace_line(dial.file, dial.line, FIRST_PRIORITY.sub(r"\g<1>n\g<2>", raw))
            else:
                notes.append(_limit_by_hand(ctx.name, pattern, dial.file, dial.line, dial.priority))
                continue
            edits.insert_after(dial.file, dial.line - 1, lines)
    return notes


def _limit_by_hand(context: str, pattern: str, file: str, line: int, priority: str) -> str:
    """The exact dialplan lines for a limit that could not be added without shifting priorities."""
    if priority.isdigit():
        p = int(priority)
        first, second = str(p), str(p + 1)
        shift = f"and add 2 to the priority of that Dial (now {p}) and of every later step"
    else:
        first, second = priority, "n"
        shift = "and point any Goto to the Dial's priority at the first of them"
    return (
        f"[{context}] {pattern}: explicit priorities, so add this call limit by hand: "
        f"insert before the Dial at {file}:{line}: "
        f"'exten => {pattern},{first},{SET_GROUP}' and "
        f"'exten => {pattern},{second},{CHECK_GROUP}', {shift}"
    )
