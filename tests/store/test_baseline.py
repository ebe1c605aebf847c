"""The fraud baseline's tables (migration 3): a round trip through a reopened database, an older
database migrated in place, damaged rows skipped with a log line, never a crash."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.store import SCHEMA_VERSION, Baseline, BaselineStore, Store
from sipguard.store.schema import MIGRATIONS
from sipguard.store.sqlite import _statements


def test_nothing_saved_is_none_and_a_save_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = Store.open(path)
    assert BaselineStore(store).load() is None  # never saved: the rules learn
    state: Baseline = {"accounts": {"1001": ["GB", "FR"], "1002": []}, "learn_until": 1e9}
    BaselineStore(store).save(state)
    store.close()
    again = Store.open(path)
    assert BaselineStore(again).load() == state
    # a later save replaces the whole baseline (an account the engine forgot is gone)
    BaselineStore(again).save({"accounts": {"1003": ["DE"]}, "learn_until": "done"})
    assert BaselineStore(again).load() == {"accounts": {"1003": ["DE"]}, "learn_until": "done"}
    BaselineStore(again).save({"accounts": {}, "learn_until": None})
    assert BaselineStore(again).load() == {"accounts": {}, "learn_until": None}
    again.close()


def test_a_version_2_database_gets_the_tables_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version, script in enumerate(MIGRATIONS[:2], 1):
        for stmt in _statements(script):
            conn.execute(stmt)
        conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.execute("INSERT INTO allowlist (cidr) VALUES ('10.0.0.0/8')")
    conn.commit()
    conn.close()
    store = Store.open(path)
    assert store.schema_version == SCHEMA_VERSION >= 3
    assert store.allowlist() == ["10.0.0.0/8"]
    assert BaselineStore(store).load() is None
    BaselineStore(store).save({"accounts": {"1001": ["GB"]}, "learn_until": "done"})
    assert BaselineStore(store).load() == {"accounts": {"1001": ["GB"]}, "learn_until": "done"}
    store.close()


def test_damaged_rows_are_skipped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store.open(tmp_path / "state.db")
    BaselineStore(store).save({"accounts": {"1001": ["GB"]}, "learn_until": 5.0})
    with store.transaction() as c:
        c.executemany(
            "INSERT INTO fraud_baseline (account, countries) VALUES (?, ?)",
            [("a", "not json"), ("b", '{"GB": 1}'), ("c", "[1, 2]"), ("d", '["x' + "y" * 9000)],
        )
        c.execute("UPDATE fraud_learning SET learn_until = 'soon'")
    with caplog.at_level(logging.WARNING, "sipguard.store"):
        loaded = BaselineStore(store).load()
    assert loaded == {"accounts": {"1001": ["GB"]}, "learn_until": None}
    assert "rows=4" in caplog.text
    store.close()


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.text(max_size=20), st.lists(st.text(max_size=3), max_size=5), max_size=8),
    st.none() | st.just("done") | st.floats(allow_nan=False, allow_infinity=False),
)
def test_any_baseline_round_trips(
    accounts: dict[str, list[str]], until: float | str | None
) -> None:
    store = Store.open(":memory:")
    state: Baseline = {"accounts": accounts, "learn_until": until}
    BaselineStore(store).save(state)
    assert BaselineStore(store).load() == state
    store.close()
