"""fastlog/tables.h is generated from the Python normalizer's tables and is not stale.

The C normalizer expands these X-macros for its kinds, services, link names, security events,
failure reasons and candidate phrases; hatch_build.render_tables writes them from the Python
tables, so a phrase or kind added in Python reaches C at the next build, and a stale checked-in
header fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sipguard.core.asterisk import lines, normalizer, security
from sipguard.core.events import Kind

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
import hatch_build  # noqa: E402


def test_the_checked_in_header_is_what_the_python_tables_generate() -> None:
    checked_in = (ROOT / hatch_build.TABLES).read_text(encoding="utf-8")
    assert checked_in == hatch_build.render_tables(ROOT), "run scripts/build-native"


def test_every_python_entry_is_in_the_header() -> None:
    text = hatch_build.render_tables(ROOT)
    for phrase in (*normalizer.PHRASES, *normalizer.NO_PHRASES):
        assert f'X("{phrase}", ' in text
    for reason, kind in (*lines.PJSIP_KINDS.items(), *lines.CHAN_SIP_KINDS.items()):
        assert f'X("{reason}", {kind.name})' in text
    for name, kind in security.EVENT_KINDS.items():
        assert f"X({name}, {kind.name})" in text
    for kind in Kind:
        assert f"X({kind.name})" in text


def test_a_new_python_phrase_and_reason_reach_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normalizer, "PHRASES", (*normalizer.PHRASES, 'a "new" phrase'))
    reasons = {**lines.CHAN_SIP_KINDS, "Peer is blocked": Kind.ACL_DENIED}
    monkeypatch.setattr(lines, "CHAN_SIP_KINDS", reasons)
    text = hatch_build.render_tables(ROOT)
    assert 'X("a \\"new\\" phrase", 0, 0)' in text  # untuned: correct, only slower
    assert 'X("Peer is blocked", ACL_DENIED)' in text
    assert text != (ROOT / hatch_build.TABLES).read_text(encoding="utf-8")


def test_bad_tuning_and_non_ascii_phrases_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(hatch_build.PHRASE_TUNING, "failed", (4, 0))  # window past the end
    with pytest.raises(ValueError, match="'failed'"):
        hatch_build.render_tables(ROOT)
    monkeypatch.setitem(hatch_build.PHRASE_TUNING, "failed", (0, 0))
    monkeypatch.setattr(normalizer, "PHRASES", (*normalizer.PHRASES, "caf\u00e9"))
    with pytest.raises(ValueError, match="printable ASCII"):
        hatch_build.render_tables(ROOT)
