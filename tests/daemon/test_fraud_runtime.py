"""The daemon's fraud wiring without a process: `[daemon.fraud]` validation (one-line errors naming
file and key), the learned baseline's round trip through the store, and the one-time import of an
older sipguard's `fraud-baseline.json` (a damaged one is a warning: the rules learn again)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.config.errors import ConfigError
from sipguard.config.settings import load_settings
from sipguard.daemon.fraud import (
    MAX_BASELINE,
    apply_baseline,
    baseline_state,
    build_fraud_engine,
    import_baseline_file,
    read_baseline,
)
from sipguard.fraud.model import Call
from sipguard.store import BaselineStore, Store

AMI = '[sources.ami]\nenabled = true\nusername = "sg"\nsecret = "x"\n'


def load(tmp: Path, text: str) -> object:
    f = tmp / "sipguard.toml"
    f.write_text(text)
    return load_settings(f)


def test_off_by_default_and_on_with_ami(tmp_path: Path) -> None:
    assert build_fraud_engine(load(tmp_path, AMI)) is None
    on = load(tmp_path, AMI + '[daemon.fraud]\nenabled = true\n[fraud]\nhome_country = "DE"\n')
    engine = build_fraud_engine(on)
    assert engine is not None and engine.config.numbering.home_country == "DE"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[daemon.fraud]\nenabled = true\n", "daemon.fraud.enabled", "needs [sources.ami]"),
        (
            AMI + 'events = "security,system"\n[daemon.fraud]\nenabled = true\n',
            "sources.ami.events",
            "needs the 'call' event class",
        ),
        (
            AMI + '[daemon.fraud]\nenabled = true\nprofile = "nope"\n',
            "daemon.fraud.profile",
            "no profile named 'nope'",
        ),
        (AMI + "[daemon.fraud]\nenabled = true\n[fraud]\nbogus = 1\n", "fraud.bogus", "unknown"),
        (
            AMI + "[daemon.fraud]\nenabled = true\n[fraud.rules.spend]\ndaily_limit = -1\n",
            "fraud.rules.spend.daily_limit",
            "must not be negative",
        ),
    ],
)
def test_bad_fraud_settings_are_one_line_errors(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        build_fraud_engine(load(tmp_path, text))
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{tmp_path / 'sipguard.toml'}: {key}: ") and reason in msg


def test_bad_daemon_fraud_keys_stop_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"daemon\.fraud\.enabled: expected bool"):
        load(tmp_path, '[daemon.fraud]\nenabled = "yes"\n')
    with pytest.raises(ConfigError, match=r"daemon\.fraud\.color: unknown key"):
        load(tmp_path, '[daemon.fraud]\ncolor = "red"\n')
    with pytest.raises(ConfigError, match=r"daemon\.fraud\.cdr: expected a list of strings"):
        load(tmp_path, "[daemon.fraud]\ncdr = [1]\n")


def test_missing_rate_table_names_the_file(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    text = AMI + f'[daemon.fraud]\nenabled = true\nrates = "{rates}"\n'
    with pytest.raises(ConfigError, match=f"^{rates}: "):
        build_fraud_engine(load(tmp_path, text))
    rates.write_text("44,0.05\n900,2.50\n")
    engine = build_fraud_engine(load(tmp_path, text))
    assert engine is not None and engine.rates.rates


def test_notify_urls_are_masked_when_printed(tmp_path: Path) -> None:
    s = load(tmp_path, '[daemon.fraud]\nnotify = ["mailto://u:hunter2@example.org"]\n')
    shown = s.to_dict()  # type: ignore[attr-defined]
    assert shown["daemon"]["fraud"]["notify"] == ["********"]
    assert "hunter2" not in json.dumps(shown)
    assert s.daemon.fraud.notify == ["mailto://u:hunter2@example.org"]  # type: ignore[attr-defined]


def engine_for(tmp: Path, learn: int) -> object:
    text = AMI + '[daemon.fraud]\nenabled = true\n[fraud]\nhome_country = "DE"\n'
    text += f"[fraud.rules.new_country]\nlearn_seconds = {learn}\n"
    # business hours all week: the wall clock the test runs at cannot matter
    text += '[fraud.rules.after_hours]\ndays = ["mon","tue","wed","thu","fri","sat","sun"]\n'
    text += 'start = "00:00"\nend = "24:00"\n'
    return build_fraud_engine(load(tmp, text))


def call(engine: object, uid: str, account: str, dst: str, t: float) -> list[object]:
    return engine.call_started(Call(uid, account, dst, t))  # type: ignore[attr-defined,no-any-return]


def saved_and_reopened(path: Path, state: object) -> object:
    """`state` saved in the store at `path`, read back after closing and reopening it."""
    store = Store.open(path)
    BaselineStore(store).save(state)  # type: ignore[arg-type]
    store.close()
    store = Store.open(path)
    try:
        return BaselineStore(store).load()
    finally:
        store.close()


def test_baseline_round_trip_skips_learning_after_restart(tmp_path: Path) -> None:
    path, t = tmp_path / "state.db", 1_763_780_000.0
    first = engine_for(tmp_path, 3600)
    call(first, "a", "1001", "00442079460000", t)  # GB, learned (inside the learning hour)
    state = baseline_state(first)
    assert state == {"accounts": {"1001": ["GB"]}, "learn_until": t + 3600}
    loaded = saved_and_reopened(path, state)
    assert loaded == state
    # a restart during learning: learning still ends an hour after the first call
    second = engine_for(tmp_path, 3600)
    apply_baseline(second, loaded)  # type: ignore[arg-type]
    assert second.learn_until == t + 3600  # type: ignore[attr-defined]
    assert call(second, "b", "1001", "0033142685300", t + 10) == []  # FR: still learning
    # after learning: GB is known, a new country alerts
    assert call(second, "c", "1001", "00442079460001", t + 4000) == []
    hits = call(second, "d", "1002", "0033142685300", t + 4000)
    assert [h.rule for h in hits] == ["new_country"]  # type: ignore[attr-defined]


def test_a_loaded_baseline_means_learning_is_over(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, 604800)
    apply_baseline(engine, {"accounts": {"1001": ["GB"]}, "learn_until": "done"})
    assert math.isinf(engine.learn_until)  # type: ignore[attr-defined]
    loaded = saved_and_reopened(tmp_path / "state.db", baseline_state(engine))
    assert loaded["learn_until"] == "done"  # type: ignore[index]
    fresh = engine_for(tmp_path, 604800)
    apply_baseline(fresh, loaded)  # type: ignore[arg-type]
    hits = call(fresh, "x", "1001", "0033142685300", 1_763_780_000.0)
    assert [h.rule for h in hits] == ["new_country"]  # type: ignore[attr-defined]


def test_missing_or_damaged_baseline_files_mean_learning_again(tmp_path: Path) -> None:
    path = tmp_path / "fraud-baseline.json"
    assert read_baseline(path) is None
    for text in (
        "not json",
        "[]",
        '{"accounts": {"1001": "GB"}}',
        '{"accounts": {}, "learn_until": "soon"}',
    ):
        path.write_text(text)
        assert read_baseline(path) is None, text
    path.write_bytes(b"\xff\xfe" * 10)
    assert read_baseline(path) is None
    path.write_text('{"accounts": {}, "pad": "' + "x" * MAX_BASELINE + '"}')
    assert read_baseline(path) is None  # too large: not read whole


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_in_the_baseline_file_never_crash(tmp_path_factory: object, data: bytes) -> None:
    path = tmp_path_factory.mktemp("b") / "fraud-baseline.json"  # type: ignore[attr-defined]
    path.write_bytes(data)
    state = read_baseline(path)
    assert state is None or isinstance(state["accounts"], dict)


def test_an_old_baseline_file_is_imported_once_then_renamed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "fraud-baseline.json"
    old.write_text('{"accounts": {"1001": ["GB"]}, "learn_until": "done"}')
    store = Store.open(tmp_path / "sipguard.db")
    with caplog.at_level(logging.INFO, "sipguard.fraud"):
        assert import_baseline_file(tmp_path, BaselineStore(store))
    assert "imported into the store" in caplog.text
    assert not old.exists() and (tmp_path / "fraud-baseline.json.imported").exists()
    assert BaselineStore(store).load() == {"accounts": {"1001": ["GB"]}, "learn_until": "done"}
    assert not import_baseline_file(tmp_path, BaselineStore(store))  # nothing left to import
    # a baseline the store holds already wins over a file found later
    old.write_text('{"accounts": {"1009": ["FR"]}, "learn_until": null}')
    assert not import_baseline_file(tmp_path, BaselineStore(store))
    assert not old.exists()
    assert BaselineStore(store).load() == {"accounts": {"1001": ["GB"]}, "learn_until": "done"}
    store.close()


@pytest.mark.parametrize(
    "data", [b"not json", b'{"accounts": {"1001": "GB"}}', b"\xff\xfe" * 10, b"{" * 10_000]
)
def test_a_damaged_old_file_is_a_warning_and_learning_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    old = tmp_path / "fraud-baseline.json"
    old.write_bytes(data)
    store = Store.open(tmp_path / "sipguard.db")
    with caplog.at_level(logging.WARNING, "sipguard.fraud"):
        assert not import_baseline_file(tmp_path, BaselineStore(store))
    assert "fraud baseline ignored, learning again" in caplog.text
    assert BaselineStore(store).load() is None  # the rules learn again
    assert not old.exists() and (tmp_path / "fraud-baseline.json.imported").exists()
    store.close()


def test_an_oversized_old_file_is_not_read_whole(tmp_path: Path) -> None:
    old = tmp_path / "fraud-baseline.json"
    old.write_text('{"accounts": {}, "pad": "' + "x" * MAX_BASELINE + '"}')
    store = Store.open(tmp_path / "sipguard.db")
    assert not import_baseline_file(tmp_path, BaselineStore(store))
    assert BaselineStore(store).load() is None and not old.exists()
    store.close()
