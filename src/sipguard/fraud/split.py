"""The parallel scan's stage 1: a byte range of a CDR file to calls shelved by account owner.

Stage 1 (`parse_range`): one process per byte range of a file runs the one CDR row loop
(`CdrParser.records`) over its lines and sorts the outbound calls by the part that owns
their account, as plain tuples written with `marshal` to files of the scan's own temporary
directory (numbers and strings only; nothing read back is ever code, and nothing comes from
anyone but our parts). Stage 2: one process per part feeds its accounts' calls, range after
range (so in file order), to `FraudEngine.check`, the same loop as one process.
"""

from __future__ import annotations

import csv
import marshal
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sipguard.fraud.cdr import CallTuple, CdrParser

# Bytes parsed at a time: the calls of one block are shelved, then marshalled. Blocks whose
# calls stay in the CPU caches: the 2-process bench/fraud scan ran x1.8 -> x1.9-2.0 of one
# process when this went from 8 MiB to 256 KiB.
BLOCK = 256 << 10


class Irregular(Exception):
    """A row spans lines or the file has CR line ends: ranges cannot be parsed apart."""


def owner(account: str, parts: int) -> int:
    """The part that checks an account: every rule's state is per account.

    str hash is salted per interpreter, which forked parts share; the report does not depend
    on which part an account lands in.
    """
    return hash(account) % parts


def parse_range(
    parser: CdrParser,
    path: str | Path,
    begin: int,
    end: int,
    outs: list[Any],
    first: bool,
) -> int:
    """Parse bytes [begin, end) of `path` (whole lines); calls go to `outs[owner]`.

    `first`: the range starts the file (where a layout's header row is).

    Returns the number of rows (one per line). Line numbers in `parser.first_error` and in
    the tuples count from 1 at `begin`. Raises Irregular when rows and lines differ.
    """
    parts = len(outs)
    done = 0
    carry = b""
    with open(path, "rb") as f:
        f.seek(begin)
        left = end - begin
        while left > 0 or carry:
            chunk = f.read(min(BLOCK, left)) if left > 0 else b""
            left -= len(chunk)
            data = carry + chunk
            if left > 0 and chunk:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            if not data:
                break
            text = data.decode("utf-8", "replace")
            if "\r" in text:
                raise Irregular(str(path))
            # Without CR, lines end at "\n" alone: split() is what a file read gives, faster
            lines = text.split("\n")
            if not lines[-1]:
                lines.pop()
            shelves: list[list[CallTuple]] = [[] for _ in range(parts)]
            before = parser.rows
            header = first and done == 0  # the file's first line
            for rec in parser.records(csv.reader(lines), done + 1, header):
                shelves[hash(rec[1]) % parts].append(rec)  # owner(), inlined: every call
            if parser.rows - before != len(lines):
                raise Irregular(str(path))
            done += len(lines)
            for out, shelf in zip(outs, shelves, strict=True):
                if shelf:
                    blob = marshal.dumps(shelf)
                    out.write(len(blob).to_bytes(8, "little"))
                    out.write(blob)
            if not chunk:
                break
    return done


def load_shelves(f: Any) -> Iterable[list[CallTuple]]:
    """The lists one range wrote for one part, in order (each read whole: marshal.load on
    a file reads object by object, several times slower)."""
    while True:
        head = f.read(8)
        if not head:
            return
        size = int.from_bytes(head, "little")
        blob = f.read(size)
        if len(head) != 8 or len(blob) != size:
            raise ValueError("truncated list of calls")
        shelf = marshal.loads(blob)
        if not isinstance(shelf, list):
            raise ValueError("not a list of calls")
        yield shelf
