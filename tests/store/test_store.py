"""Store: roundtrip, history, evidence bounds, offsets, allow-list, WAL, migrations, pruning."""

from __future__ import annotations

import sqlite3
from ipaddress import ip_address, ip_network

import pytest

from sipguard.core.alerts import Action, Decision
from sipguard.core.events import Event, Kind, Origin, Service
from sipguard.store import MAX_EVENTS_PER_DECISION, SCHEMA_VERSION, Checkpoint, Store, StoreError
from sipguard.store.sqlite import MERGED

T0 = 1_700_000_000.0


def ev(i: int, ip: str = "203.0.113.5") -> Event:
    return Event(
        time=T0 + i,
        kind=Kind.WRONG_PASSWORD,
        service=Service.PJSIP,
        ip=ip_address(ip),
        port=5060 + i,
        transport="udp",
        account=f"10{i}",
        detail="Wrong password",
        origin=Origin("/var/log/asterisk/messages", i + 1, f"line {i}"),
    )


def dec(net: str, start: float = T0, expires: float | None = T0 + 3600, **kw: object) -> Decision:
    return Decision(
        ip_network(net), Action.BAN, "pjsip-brute", "8 wrong passwords", start, expires, **kw
    )  # type: ignore[arg-type]


@pytest.fixture
def st(tmp_path):
    s = Store.open(tmp_path / "sub" / "state.db")
    yield s
    s.close()


def test_open_creates_dirs_wal_and_schema(tmp_path):
    path = tmp_path / "a" / "b" / "state.db"
    s = Store.open(path)
    assert path.exists() and s.schema_version == SCHEMA_VERSION
    s.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # reopening does not re-run migrations
    s2 = Store.open(path)
    assert s2.schema_version == SCHEMA_VERSION
    s2.close()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 5,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(path)


def test_garbage_file_is_a_store_error(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=str(path)):
        Store.open(path)


def test_decision_roundtrip_and_evidence(st):
    d = dec("203.0.113.5", level=2, origin="manual", evidence=(ev(0), ev(1)))
    did = st.save_decision(d)
    (back,) = st.active_decisions(T0 + 10)
    assert back.network == d.network and back.rule == d.rule and back.expires == d.expires
    assert back.level == 2 and back.origin == "manual" and back.action is Action.BAN
    assert st.events_for("203.0.113.5") == [ev(0), ev(1)]
    assert st.add_events(did, [ev(2)]) == 1
    assert [e.port for e in st.events_for(ip_network("203.0.113.5/32"))] == [5060, 5061, 5062]
    assert st.active_decisions(T0 + 3600) == []  # expired


def test_permanent_v6_and_cidr(st):
    st.save_decision(dec("2001:db8:1::/64", expires=None))
    st.save_decision(dec("198.51.100.0/24"))
    nets = {d.network for d in st.active_decisions(T0 + 10**9)}
    assert nets == {ip_network("2001:db8:1::/64")}


def test_unban_keeps_history_and_rebans_supersede(st):
    st.save_decision(dec("192.0.2.7"))
    st.save_decision(dec("192.0.2.7", start=T0 + 100, expires=T0 + 7200, level=1))
    assert [d.level for d in st.active_decisions(T0 + 200)] == [1]
    assert st.end_decision("192.0.2.7", T0 + 300, "unban") == 1
    assert st.active_decisions(T0 + 301) == []
    rows = st.decision_rows("192.0.2.7")
    assert [(r.decision.level, r.end_reason) for r in rows] == [(0, "superseded"), (1, "unban")]
    assert rows[1].ended == T0 + 300
    assert len(st.decision_history(ip_network("192.0.2.7"))) == 2


def test_evidence_is_bounded(st):
    did = st.save_decision(dec("192.0.2.8"))
    stored = st.add_events(did, [ev(i, "192.0.2.8") for i in range(MAX_EVENTS_PER_DECISION + 50)])
    assert stored == MAX_EVENTS_PER_DECISION
    assert st.add_events("192.0.2.8", [ev(999, "192.0.2.8")]) == 0
    assert len(st.events_for("192.0.2.8", limit=10_000)) == MAX_EVENTS_PER_DECISION


def test_huge_event_is_stored_as_a_stub(st):
    big = Event(
        T0,
        Kind.SCANNER_PROBE,
        Service.SENSOR,
        ip_address("192.0.2.9"),
        user_agent="x" * 100_000,
        origin=Origin("sensor", 1, "y" * 100_000),
    )
    st.add_events("192.0.2.9", [big])  # no decision yet: kept against the network
    (back,) = st.events_for("192.0.2.9")
    assert back.kind is Kind.SCANNER_PROBE and len(back.user_agent or "") == 200
    assert back.origin.text == ""


def test_add_events_to_unknown_id(st):
    with pytest.raises(KeyError):
        st.add_events(12345, [ev(0)])


def test_offences_offsets_allowlist(st):
    st.save_offences("203.0.113.5", [T0, T0 + 1.5])
    st.save_offences("2001:db8::/64", [T0])
    st.save_offences("gone", [T0])
    st.save_offences("gone", [])
    assert st.load_offences() == {"203.0.113.5": [T0, T0 + 1.5], "2001:db8::/64": [T0]}
    assert st.get_offset("/var/log/asterisk/full") is None
    cp = Checkpoint(dev=2049, inode=77, offset=123456, line_no=999, head_hash="ab12")
    st.set_offset("/var/log/asterisk/full", cp)
    st.set_offset("/var/log/asterisk/full", cp)
    assert st.get_offset("/var/log/asterisk/full") == cp
    assert st.allowlist_add("10.1.2.3/8", "office") == "10.0.0.0/8"
    assert st.allowlist_add("Trunk.Example.NET.") == "trunk.example.net"
    assert st.allowlist_add("2001:db8::1") == "2001:db8::1/128"
    assert st.allowlist() == ["10.0.0.0/8", "2001:db8::1/128", "trunk.example.net"]
    assert st.allowlist_remove("10.0.0.0/8") and not st.allowlist_remove("10.0.0.0/8")
    for bad in ("", "300.1.2.3", "a b", "-x.example", "1.2.3.4/40"):
        with pytest.raises(ValueError):
            st.allowlist_add(bad)


def test_transaction_rolls_back_as_a_whole(st):
    with pytest.raises(RuntimeError), st.transaction():
        st.save_decision(dec("192.0.2.10"))
        st.save_offences("k", [T0])
        raise RuntimeError("boom")
    assert st.active_decisions(T0) == [] and st.load_offences() == {}


def test_prune(st):
    st.save_decision(dec("192.0.2.1", expires=T0 + 60, evidence=(ev(0, "192.0.2.1"),)))
    st.save_decision(dec("192.0.2.2", expires=None))
    st.save_decision(dec("192.0.2.3"))
    st.end_decision("192.0.2.3", T0 + 10, "unban")
    st.save_decision(dec("192.0.2.4", start=T0 + 9 * 86400, expires=T0 + 10 * 86400))
    assert st.prune(T0 + 9 * 86400, keep_days=7) == 2
    left = {
        str(d.network)
        for r in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4")
        for d in st.decision_history(r)
    }
    assert left == {"192.0.2.2/32", "192.0.2.4/32"}
    assert st.events_for("192.0.2.1") == []


def test_active_decisions_carry_their_own_evidence(st):
    st.save_decision(dec("203.0.113.5", evidence=(ev(0), ev(1), ev(2))))
    st.save_decision(dec("203.0.113.6", evidence=(ev(3, "203.0.113.6"),)))
    st.save_decision(dec("203.0.113.7"))
    # a superseded decision's evidence stays with it, not with the one that replaced it
    st.save_decision(dec("203.0.113.6", start=T0 + 5, evidence=(ev(4, "203.0.113.6"),)))
    got = {str(d.network): [e.port for e in d.evidence] for d in st.active_decisions(T0 + 10)}
    assert got == {
        "203.0.113.5/32": [5060, 5061, 5062],
        "203.0.113.6/32": [5064],
        "203.0.113.7/32": [],
    }
    assert all(not d.evidence for d in st.active_decisions(T0 + 10, evidence=False))


def test_a_merged_decision_is_history_and_the_running_ban_stays(st):
    st.save_decision(dec("192.0.2.9", evidence=(ev(0, "192.0.2.9"),)))
    joined = Decision(
        ip_network("192.0.2.9"),
        Action.BAN,
        "other-rule",
        "2 more; already banned",
        T0 + 5,
        T0 + 3600,
        evidence=(ev(1, "192.0.2.9"),),
    )
    st.save_merged(joined)
    (active,) = st.active_decisions(T0 + 10)
    assert active.rule == "pjsip-brute" and [e.port for e in active.evidence] == [5060]
    rows = st.decision_rows("192.0.2.9")
    assert [(r.decision.rule, r.end_reason) for r in rows] == [
        ("pjsip-brute", None),
        ("other-rule", MERGED),
    ]
    assert [e.port for e in st.events_for("192.0.2.9")] == [5060, 5061]
