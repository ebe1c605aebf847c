"""Asterisk extension patterns (`_NXX.`, `_X!`, `_[2-5]XX`, literals) as small automata.

`overlap(a, b)` tells whether some dialled number matches both patterns; the dialplan analysis uses
it to follow a number through `Goto(ctx,${EXTEN},1)` into the extensions that could take it.
"""

from __future__ import annotations

import string

# A token is (allowed characters or None for any character, repeat?). `.` = one or more of any
# character, `!` = zero or more.
Token = tuple[frozenset[str] | None, bool]

DIGITS = frozenset(string.digits)
PAID_MIN_LENGTH = 7  # shorter fixed-length numbers are internal extensions
MAX_PATTERN = 80


def _char_class(body: str) -> frozenset[str]:
    chars: set[str] = set()
    i = 0
    while i < len(body):
        if i + 2 < len(body) and body[i + 1] == "-":
            lo, hi = ord(body[i]), ord(body[i + 2])
            chars.update(chr(c) for c in range(lo, hi + 1) if hi - lo < 128)
            i += 3
        else:
            chars.add(body[i])
            i += 1
    return frozenset(chars)


def tokens(pattern: str) -> list[Token]:
    pattern = pattern[:MAX_PATTERN]
    if not pattern.startswith("_"):
        return [(frozenset(c), False) for c in pattern]
    out: list[Token] = []
    i = 1
    while i < len(pattern):
        ch = pattern[i]
        upper = ch.upper()
        if upper == "X":
            out.append((DIGITS, False))
        elif upper == "Z":
            out.append((frozenset("123456789"), False))
        elif upper == "N":
            out.append((frozenset("23456789"), False))
        elif ch == ".":
            out.extend([(None, False), (None, True)])
        elif ch == "!":
            out.append((None, True))
        elif ch == "[":
            close = pattern.find("]", i)
            if close < 0:
                out.append((frozenset("["), False))
            else:
                out.append((_char_class(pattern[i + 1 : close]), False))
                i = close
        elif ch not in " -":  # Asterisk ignores dashes and spaces in patterns
            out.append((frozenset(ch), False))
        i += 1
    return out


def _meet(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    if a is None or b is None:
        return True
    return bool(a & b)


def overlap(a: list[Token], b: list[Token]) -> bool:
    """True when at least one string matches both token lists (product automaton search)."""
    seen: set[tuple[int, int]] = set()
    stack = [(0, 0)]
    while stack:
        i, j = stack.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i][1]:
            stack.append((i + 1, j))
        if j < len(b) and b[j][1]:
            stack.append((i, j + 1))
        if i < len(a) and j < len(b) and _meet(a[i][0], b[j][0]):
            stack.append((i if a[i][1] else i + 1, j if b[j][1] else j + 1))
    return False


def is_paid(toks: list[Token]) -> bool:
    """Could this pattern take an external number (open-ended, or 7+ characters, from a digit)?"""
    if not toks:
        return False
    first = toks[0][0]
    if first is not None and not (first & (DIGITS | {"+"})):
        return False
    open_ended = any(rep for _, rep in toks)
    return open_ended or sum(1 for _, rep in toks if not rep) >= PAID_MIN_LENGTH
