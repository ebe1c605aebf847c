from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipguard.config.errors import ConfigError
from sipguard.fraud.classify import Classifier, Hotlist, Numbering
from sipguard.fraud.tables import load_high_risk_countries, load_hotlist, load_rates

US = Numbering("US", outside_line="9", international_prefixes=("011",), national_prefix="1")
DE = Numbering(
    "DE",
    outside_line="0",
    international_prefixes=("00",),
    national_prefix="0",
    high_risk_countries=load_high_risk_countries(),
)


@pytest.mark.parametrize(
    ("numbering", "dialled", "e164"),
    [
        (US, "9011442079460123", "+442079460123"),  # outside line + international
        (US, "912125550123", "+12125550123"),  # outside line + national prefix 1
        (US, "2125550199", "+12125550199"),  # no prefix: a number in the home country
        (US, "+44 20 7946 0123", "+442079460123"),
        (US, "1001", ""),  # an extension
        (DE, "0030123456", "+4930123456"),  # outside line 0, then national 0
        (DE, "000442079460123", "+442079460123"),
        (DE, "12", ""),
        (Numbering("DE"), "030123456", "+4930123456"),  # phonenumbers' own national rules
    ],
)
def test_normalize(numbering: Numbering, dialled: str, e164: str) -> None:
    assert Classifier(numbering).normalize(dialled) == e164


@pytest.mark.parametrize(
    ("dialled", "country", "kind", "scope"),
    [
        ("0004930123456", "DE", "fixed", "national"),
        ("0015123456789", "DE", "mobile", "national"),
        ("009001234567", "DE", "premium_rate", "national"),
        ("008001234567", "DE", "toll_free", "national"),
        ("000881612345678", "001", "satellite", "international"),
        ("000882130001234", "001", "international_network", "international"),
        ("000883510000000", "001", "international_network", "international"),
        ("000442079460123", "GB", "fixed", "international"),
        ("000447400123456", "GB", "mobile", "international"),
        ("0005371234567", "CU", "fixed", "international"),
        ("0001", "", "internal", "internal"),
    ],
)
def test_classify(dialled: str, country: str, kind: str, scope: str) -> None:
    d = Classifier(DE).classify(dialled)
    assert (d.country, d.type, d.scope) == (country, kind, scope)
    assert d.premium == (kind in ("premium_rate", "satellite", "international_network"))


def test_high_risk_and_hotlist(tmp_path: Path) -> None:
    hot = tmp_path / "hot.csv"
    hot.write_text("prefix,label\n# comment\n+4930999,our own test range\n")
    c = Classifier(DE, load_hotlist(hot))
    assert c.classify("0005371234567").high_risk  # Cuba
    assert not c.classify("000442079460123").high_risk
    assert c.classify("0030999123").hotlist == "our own test range"
    assert c.classify("0030998123").hotlist == ""
    assert c.classify("0005371234567").in_scope(["high_risk"])
    assert not c.classify("0030998123").in_scope(["international", "premium"])


def test_repeated_and_neighbouring_numbers_do_not_call_phonenumbers_again() -> None:
    c = Classifier(DE)
    c.classify("0030123456")
    assert c.lookups == 1
    for tail in range(100):
        c.classify(f"00301234{tail:02d}")  # same prefix and length: the prefix cache answers
    assert c.lookups == 1
    c.classify("0015123456789")
    assert c.lookups == 2


@given(st.text(max_size=200))
def test_garbage_never_crashes(text: str) -> None:
    d = Classifier(DE).classify(text)
    assert d.scope in ("internal", "national", "international", "invalid")


def test_hotlist_rejects_non_numbers() -> None:
    with pytest.raises(ValueError):
        Hotlist().add("44abc", "x")


def test_rate_table_longest_prefix_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "rates.csv"
    good.write_text("prefix,cost_per_minute\n44,0.02\n447,0.30\n+4470,1.00\n")
    rates = load_rates(good)
    assert rates.per_minute("+442079460123") == 0.02
    assert rates.per_minute("+447400123456") == 0.30
    assert rates.per_minute("+447012345678") == 1.00
    assert rates.per_minute("+33123456789") == 0.0
    assert rates.cost("+447400123456", 120) == pytest.approx(0.60)

    bad = tmp_path / "bad.csv"
    bad.write_text("prefix,cost_per_minute\n44,0.02\n45,cheap\n")
    with pytest.raises(ConfigError) as e:
        load_rates(bad)
    assert str(bad) in str(e.value) and "line 3" in str(e.value) and "cheap" in str(e.value)
    with pytest.raises(ConfigError, match="No such file"):
        load_rates(tmp_path / "nope.csv")
