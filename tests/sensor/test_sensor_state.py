"""DialogTable.matches: a live dialog and one shared, non-empty tag; a match refreshes it."""

from __future__ import annotations

from sipguard.sensor.state import DialogTable


def test_matches_needs_a_shared_tag_of_a_live_dialog() -> None:
    d = DialogTable(max_dialogs=10, ttl=30.0)
    d.add("c1", ("a", None), now=0.0)
    assert d.matches("c1", ("a", "b"), 1.0)  # the From tag is known
    assert d.matches("c1", (None, "b"), 2.0)  # "b" was learned by the previous match
    assert d.matches("c1", ("zz", "a"), 3.0)  # any position
    assert not d.matches("c1", ("qq", None), 4.0)  # no shared tag ("zz" was learned)
    assert not d.matches("c1", (None, None), 4.0)
    assert not d.matches("c1", ("", ""), 4.0)  # an empty tag never matches
    assert not d.matches("nope", ("a",), 4.0)
    # each match pushed the expiry to now + ttl: alive at 32.9 (last match at 3.0)
    assert d.matches("c1", ("a",), 32.9)
    assert not d.matches("c1", ("a",), 62.9 + 0.1)  # expired


def test_matches_with_any_number_of_tags() -> None:
    d = DialogTable(max_dialogs=10, ttl=30.0)
    d.add("c", ("t3",), now=0.0)
    assert d.matches("c", ("x", "y", "t3"), 1.0)
    assert not d.matches("c", (), 1.0)
