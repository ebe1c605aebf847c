"""The offline scan on every core: the same report as one process, byte for byte.

Every rule keeps its state per account, so accounts are split between forked parts
(`split.owner`). Stage 1 cuts each file into byte ranges of whole lines, one process per
range runs the one CDR row loop and shelves the calls by owner; stage 2 runs each part's
calls, range after range, through `FraudEngine.check`: line numbers, time order per account
and the learning period stay exactly as in one scan. The one state shared by all accounts,
the end of the learning period (set by the first outbound call of the scan), is found by
the parent before forking. The parent then merges the parts' incidents (sorted as
`AlertBook.sorted` does; no two share a key), row count, calls and error counts (in the
order one scan would have seen them).

Parts are forked (the engine, tables and caches are inherited, nothing is pickled) and send
back one JSON document each through a temporary file.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from pathlib import Path
from typing import IO, Any

from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.report import AlertBook, Incident, ScanResult
from sipguard.fraud.split import Irregular, load_shelves, parse_range

MAX_JOBS = 64
Doc = dict[str, Any]  # a child's answer, as JSON


def first_call_start(paths: Sequence[str | Path], engine: FraudEngine) -> float | None:
    """Start time of the first outbound call the rules look at (the one that starts learning)."""
    for path in paths:
        with closing(engine.cdr_parser(str(path)).read_file(path)) as records:
            for rec in records:
                if not rec[10]:  # an inbound call starts nothing
                    return rec[3]
    return None


def _incident_row(inc: Incident) -> list[object]:
    return [
        inc.rule,
        inc.account,
        inc.severity,
        inc.reason,
        inc.first,
        inc.last,
        inc.calls,
        inc.hits,
        inc.ip,
    ]


def _incident(row: list[Any]) -> Incident:
    rule, account, severity, reason, first, last, calls, hits, ip = row
    return Incident(
        str(rule),
        str(account),
        str(severity),
        str(reason),
        float(first),
        float(last),
        [str(c) for c in calls],
        int(hits),
        str(ip),
    )


def _parse_part(
    paths: list[str | Path],
    engine: FraudEngine,
    ranges: list[list[int]],
    k: int,
    parts: int,
    tmp: str,
) -> Doc:
    """Stage 1: range k of every file, calls shelved by owner into tmp/<file>-<k>-<part>."""
    files = []
    for index, path in enumerate(paths):
        parser = engine.cdr_parser(str(path))
        with ExitStack() as stack:
            outs = [
                stack.enter_context(open(os.path.join(tmp, f"{index}-{k}-{j}"), "wb"))
                for j in range(parts)
            ]
            try:
                begin, end = ranges[index][k], ranges[index][k + 1]
                rows = parse_range(parser, path, begin, end, outs, k == 0)
            except Irregular:
                return {"irregular": True}
        errors = [[kind, n, parser.first_error[kind]] for kind, n in parser.errors.items()]
        files.append({"rows": rows, "parsed": parser.parsed, "errors": errors})
    return {"irregular": False, "files": files}


def _check_part(
    paths: list[str | Path],
    engine: FraudEngine,
    gap: float,
    offsets: list[list[int]],
    j: int,
    tmp: str,
) -> Doc:
    """Stage 2: part j's accounts, range after range of every file."""
    book = AlertBook(gap)
    calls_before = engine.calls_seen
    for index, path in enumerate(paths):
        for k, offset in enumerate(offsets[index]):
            with open(os.path.join(tmp, f"{index}-{k}-{j}"), "rb") as f:
                for shelf in load_shelves(f):
                    engine.check(shelf, str(path), offset, on_hit=book.add)
    return {
        "calls": engine.calls_seen - calls_before,
        "incidents": [_incident_row(i) for i in book.incidents],
    }


def _fork_all(
    target: Callable[..., Doc], calls: list[tuple[object, ...]], here: bool = False
) -> list[Doc]:
    """Run target(*args) for each args in a forked child; their JSON answers, in order.

    `here`: the first call runs in this process while the children run (one fork fewer, and
    what it caches, e.g. the destinations stage 1 classified, the next forks inherit). Only
    for a target that leaves the engine's accounts alone (stage 1 parses, it checks nothing).
    """
    ctx = multiprocessing.get_context("fork")
    procs: list[Any] = []
    first: list[Doc] = []
    with ExitStack() as stack:
        outs = [stack.enter_context(tempfile.TemporaryFile()) for _ in calls[here:]]
        try:
            for n, (args, out) in enumerate(zip(calls[here:], outs, strict=True), start=here):
                proc = ctx.Process(
                    target=_child,
                    args=(target, args, out),
                    name=f"sipguard-fraud-scan-{n}",
                    daemon=True,
                )
                proc.start()
                procs.append(proc)
            if here:
                collecting = gc.isenabled()
                gc.disable()  # as in the children
                try:
                    first.append(target(*calls[0]))
                finally:
                    if collecting:
                        gc.enable()
            for proc in procs:
                proc.join()
        finally:
            for proc in procs:
                if proc.is_alive():  # interrupted: take the parts down with us
                    proc.kill()
                    proc.join()
        failed = [p.name for p in procs if p.exitcode != 0]
        if failed:
            raise RuntimeError(f"fraud scan part failed: {', '.join(failed)}")
        docs = first
        for out in outs:
            out.seek(0)
            docs.append(json.loads(out.read()))
        return docs


def _child(target: Callable[..., Doc], args: tuple[object, ...], out: IO[bytes]) -> None:
    gc.disable()  # as in scan(): the state is acyclic, reference counting frees it
    out.write(json.dumps(target(*args)).encode())
    out.flush()


def ranges_of(path: str | Path, parts: int) -> list[int]:
    """parts + 1 byte offsets cutting a file into parts ranges of whole lines."""
    size = os.stat(path).st_size
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, parts):
            pos = max(cuts[-1], k * size // parts)
            if pos > 0:
                f.seek(pos - 1)
                f.readline()  # to the start of the next line
                pos = f.tell()
            cuts.append(min(pos, size))
    cuts.append(size)
    return cuts


def scan_parallel(
    paths: Sequence[str | Path], engine: FraudEngine, gap: float, jobs: int
) -> ScanResult | None:
    """The report of `paths` scanned by `jobs` forked processes, or
    None when a file's rows cannot be cut into ranges of lines (CR line ends, a row across
    lines): then nothing has changed but `learn_until`, and one process must scan.

    The engine's accounts stay in the children; only `learn_until` and `calls_seen` of the
    given engine change. Raises OSError when a file cannot be read, RuntimeError when a
    child fails otherwise.
    """
    paths = list(paths)
    for path in paths:
        with open(path, "rb"):  # unreadable: the same OSError one scan raises, before forking
            pass
    jobs = max(2, min(jobs, MAX_JOBS))
    if engine.learn_until is None:
        start = first_call_start(paths, engine)
        if start is not None:
            engine.start_learning(start)
    if engine.country_of_ip is not None:
        engine.country_of_ip("192.0.2.1")  # loads the address table once, not in every child
    with tempfile.TemporaryDirectory(prefix="sipguard-fraud-") as tmp:
        ranges = [ranges_of(p, jobs) for p in paths]
        parsed = _fork_all(
            _parse_part, [(paths, engine, ranges, k, jobs, tmp) for k in range(jobs)], here=True
        )
        if any(doc["irregular"] for doc in parsed):
            return None  # the caller scans in one process: the same loop, the same report
        offsets: list[list[int]] = []
        errors = []
        rows = 0
        for index in range(len(paths)):
            offsets.append([])
            for k in range(jobs):
                offsets[index].append(
                    rows_before := sum(int(parsed[r]["files"][index]["rows"]) for r in range(k))
                )
                for kind, n, line in parsed[k]["files"][index]["errors"]:
                    errors.append([kind, n, index, rows_before + line])
            rows += sum(int(parsed[k]["files"][index]["rows"]) for k in range(jobs))
        docs = _fork_all(_check_part, [(paths, engine, gap, offsets, j, tmp) for j in range(jobs)])
    result = _merge(docs, rows, errors, engine)
    result.parsed = sum(int(f["parsed"]) for doc in parsed for f in doc["files"])
    return result


def _merge(docs: list[Doc], rows: int, errors: list[list[Any]], engine: FraudEngine) -> ScanResult:
    incidents = [_incident(row) for doc in docs for row in doc["incidents"]]
    incidents.sort(key=lambda i: (i.first, i.account, i.rule))  # AlertBook.sorted; keys unique
    engine.calls_seen += sum(int(doc["calls"]) for doc in docs)
    first: dict[str, tuple[int, int]] = {}
    counts: Counter[str] = Counter()
    for kind, n, index, line in errors:
        counts[kind] += int(n)
        first[kind] = min(first.get(kind, (index, line)), (index, line))
    # one scan's Counter holds the kinds in the order it first met them
    ordered: Counter[str] = Counter()
    for kind in sorted(counts, key=lambda k: first[k]):
        ordered[kind] = counts[kind]
    return ScanResult(incidents, rows, engine.calls_seen, ordered)


def usable_jobs(jobs: int | None) -> int:
    """--jobs: None is every core; fork is needed for more than one."""
    if jobs is None:
        try:
            jobs = len(os.sched_getaffinity(0))  # the cores this process may run on
        except AttributeError:
            jobs = os.cpu_count() or 1
    if jobs > 1 and "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(jobs, MAX_JOBS))
