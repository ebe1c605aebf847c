"""The fraud baseline in the store: the countries each account calls and when learning ends.

A restart reads it back, so the fraud rules do not learn again (a week by default). It used to
be `<state_dir>/fraud-baseline.json` beside the database; now it is two tables of migration 3,
saved in one transaction with everything else the daemon keeps (daemon/fraud.py imports an old
file once). The shape is plain data: the engine's `baseline()` / `load_baseline()` stay its
interface, this module never sees the engine.
"""

from __future__ import annotations

import json
import logging
from typing import TypedDict

from sipguard.store.sqlite import Store

log = logging.getLogger("sipguard.store")
MAX_COUNTRY_JSON = 4096  # one account's country list; a longer row is not ours: skipped
DONE = "done"  # learn_until of a baseline that was loaded: learning is over


class Baseline(TypedDict):
    accounts: dict[str, list[str]]
    learn_until: float | str | None  # "done": a loaded baseline, learning is over


class BaselineStore:
    """`load()` and `save(state)` of the one fraud baseline the store holds."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, state: Baseline) -> None:
        """Replace the saved baseline as a whole (one commit: a crash keeps the old or the new)."""
        until = state["learn_until"]
        done = until == DONE
        when = None if done or until is None else float(until)
        rows = [
            (account, json.dumps(list(countries), separators=(",", ":")))
            for account, countries in state["accounts"].items()
        ]
        with self.store.transaction() as c:
            c.execute("DELETE FROM fraud_baseline")
            c.executemany("INSERT INTO fraud_baseline (account, countries) VALUES (?, ?)", rows)
            c.execute(
                "INSERT INTO fraud_learning (id, learn_until, done) VALUES (1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET learn_until = excluded.learn_until, "
                "done = excluded.done",
                (when, int(done)),
            )

    def load(self) -> Baseline | None:
        """The saved baseline, or None when none was ever saved. A damaged row (not a list of
        country codes) is skipped with a log line: that account learns again."""
        with self.store.transaction() as c:
            learning = c.execute("SELECT learn_until, done FROM fraud_learning").fetchone()
            rows = c.execute("SELECT account, countries FROM fraud_baseline").fetchall()
        if learning is None:
            return None
        accounts: dict[str, list[str]] = {}
        skipped = 0
        for account, text in rows:
            countries = _countries(text)
            if countries is None or not isinstance(account, str):
                skipped += 1
                continue
            accounts[account] = countries
        if skipped:
            log.warning("fraud baseline rows skipped (damaged) rows=%d", skipped)
        until, done = learning
        learn_until: float | str | None = DONE if done else until
        if not done and until is not None and not isinstance(until, int | float):
            learn_until = None  # a damaged end of learning: learning starts again
        return {"accounts": accounts, "learn_until": learn_until}


def _countries(text: object) -> list[str] | None:
    if not isinstance(text, str) or len(text) > MAX_COUNTRY_JSON:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        return None
    return value
