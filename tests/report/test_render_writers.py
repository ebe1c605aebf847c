"""attacker_json / account_json write exactly what the generic walk writes of to_dict()."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.config.rules import load_rules
from sipguard.core.alerts import Action, Decision
from sipguard.policy import AllowList, Policy
from sipguard.report.aggregate import AccountUnderAttack, Attacker
from sipguard.report.render import account_json, attacker_json, indented_json, render
from sipguard.report.scan import Scanner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from genlog import generate


def scanned(tmp_path: Path, sources: int, seed: int, allow: list[str]) -> Scanner:
    log = tmp_path / f"{seed}.log"
    generate(log, tmp_path / f"{seed}.tsv", 6000, seed, 0.3, sources)
    policy = Policy(allowlist=AllowList.from_strings(allow), simulate=True)
    scanner = Scanner(load_rules(), 2026, policy)
    scanner.feed_file_chunks(str(log), [log.read_bytes()])
    scanner.finish()
    return scanner


def test_generated_reports(tmp_path: Path) -> None:
    seen = 0
    for seed, sources, allow in ((1, 0, []), (2, 300, ["0.0.0.0/1", "2000::/3"]), (3, 40, [])):
        report = scanned(tmp_path, sources, seed, allow).report
        for nl in ("\n", "\n    "):
            for a in report.sources.values():
                assert attacker_json(a, nl) == indented_json(a.to_dict(), nl)
                seen += 1
            for acc in report.accounts.values():
                assert account_json(acc, nl) == indented_json(acc.to_dict(), nl)
        out = io.StringIO()
        render(report, "json", out)
        assert out.getvalue() == json.dumps(report.to_dict(), indent=2) + "\n"
    assert seen > 500


def decision(action: Action, duration: float | None, level: int) -> Decision:
    from ipaddress import ip_network

    net = ip_network("2001:db8::/64")
    return Decision(net, action, "r\u00e9gle", 'why "quoted"\n', 5.0, None, level)


texts = st.text(max_size=6)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**20), 10**20)


@settings(max_examples=200, deadline=None)
@given(
    numbers,
    numbers,
    st.integers(0, 10**6),
    st.dictionaries(texts, st.integers(0, 9), max_size=3),
    st.dictionaries(texts, st.integers(1, 9), max_size=3),
    st.lists(texts, max_size=3),
    st.lists(
        st.tuples(
            st.sampled_from(list(Action)),
            st.none() | st.floats(0, 1e7) | st.integers(0, 10**6),
            st.integers(0, 5),
        ),
        max_size=3,
    ),
)
def test_odd_values_same_text(
    first: float,
    last: float,
    events: int,
    kinds: dict[str, int],
    accounts: dict[str, int],
    lines: list[str],
    decisions: list[tuple[Action, float | None, int]],
) -> None:
    a = Attacker("2001:db8::/64", first, last, events, kinds=kinds, accounts=accounts)
    a.addresses = set(lines)
    a.user_agents = dict.fromkeys(lines[::-1], 1)
    a.services = dict.fromkeys(["sip", "iax2"][: len(lines)])
    a.lines = lines
    a.decisions = [decision(*d) for d in decisions]
    assert attacker_json(a, "\n  ") == indented_json(a.to_dict(), "\n  ")
    acc = AccountUnderAttack("\x1b[2J\u00e9", first, last, events, kinds=kinds)
    acc.sources = set(lines)
    assert account_json(acc) == indented_json(acc.to_dict())
    if all(isinstance(v, float) and math.isfinite(v) for v in (first, last)):
        assert json.loads(attacker_json(a))["first_seen"] == first


def test_values_of_other_types_take_the_generic_walk() -> None:
    a = Attacker("203.0.113.5", True, 2.5, 3, kinds={"x": True}, accounts={"1": 2})  # type: ignore[arg-type]
    a.lines = ["x"]
    assert attacker_json(a) == indented_json(a.to_dict())
    acc = AccountUnderAttack("1001", 1.0, 2.0, 4, kinds={"wrong_password": 1.5})  # type: ignore[dict-item]
    assert account_json(acc) == indented_json(acc.to_dict())
