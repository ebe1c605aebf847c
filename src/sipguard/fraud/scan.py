"""The offline scan: CDR files through the engine into a report, and the wiring both paths share."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from pathlib import Path

from sipguard.data.countries import country_of_ip
from sipguard.fraud.classify import Classifier, Hotlist
from sipguard.fraud.config import FraudConfig
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.parallel import scan_parallel, usable_jobs
from sipguard.fraud.report import AlertBook, ScanResult
from sipguard.fraud.tables import RateTable, load_country_points


def build_engine(
    config: FraudConfig, rates: RateTable | None = None, hotlist: Hotlist | None = None
) -> FraudEngine:
    return FraudEngine(
        config,
        Classifier(config.numbering, hotlist),
        rates,
        country_of_ip=country_of_ip,
        points=load_country_points(),
    )


# Below this many bytes of CDRs (about 50,000 rows) forking costs more than it saves.
PARALLEL_MIN_BYTES = 12_000_000


def scan(
    paths: Iterable[str | Path], engine: FraudEngine, gap: float = 86400.0, jobs: int = 1
) -> ScanResult:
    """Run every row of every file through the engine (files in the order given).

    With `jobs` > 1 and enough input, accounts are split between forked processes
    (`fraud.parallel`): the same result, but the accounts' state stays in those processes.
    """
    paths = list(paths)
    if jobs > 1 and usable_jobs(jobs) > 1 and _size(paths) >= PARALLEL_MIN_BYTES:
        done = scan_parallel(paths, engine, gap, jobs)
        if done is not None:  # None: rows span lines, ranges cannot be cut; one process
            return done
    book = AlertBook(gap)
    result = ScanResult([])
    # The per-account state is millions of small acyclic tuples and lists; the cyclic
    # collector would walk all of it (and every loaded module) again and again, a quarter
    # of the scan's time (bench/fraud). Reference counting frees all the scan's garbage.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for path in paths:
            parser = engine.cdr_parser(str(path))
            engine.check(parser.read_file(path), parser.source, on_hit=book.add)
            result.rows += parser.rows
            result.parsed += parser.parsed
            result.errors.update(parser.errors)
    finally:
        if collecting:
            gc.enable()
    result.incidents = book.sorted()
    result.calls = engine.calls_seen
    return result


def _size(paths: list[str | Path]) -> int:
    total = 0
    for path in paths:
        try:
            total += os.stat(path).st_size
        except OSError:
            return 0  # one scan raises the error the caller expects
    return total
