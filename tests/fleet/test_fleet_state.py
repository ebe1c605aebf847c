"""The fleet's SQLite state: outbox order and bound, keyed values, survives reopening."""

from __future__ import annotations

from sipguard.store import Store
from sipguard.store import fleet as fleet_store
from sipguard.store.fleet import FleetState


def test_outbox_keeps_order_and_survives_reopen(tmp_path):
    path = tmp_path / "s.db"
    st = Store.open(path)
    fs = FleetState(st)
    assert fs.outbox_add([b"a", b"b", b"c"]) == 0
    fs.put({"stream": "5-0", "seq": {"pbx1": 7}})
    st.close()
    st = Store.open(path)
    fs = FleetState(st)
    rows = fs.outbox_peek(2)
    assert [m for _, m in rows] == [b"a", b"b"]
    fs.outbox_done(rows[-1][0])
    assert fs.outbox_size() == 1 and [m for _, m in fs.outbox_peek(10)] == [b"c"]
    assert fs.get("stream") == "5-0" and fs.get("seq") == {"pbx1": 7} and fs.get("x") is None
    st.close()


def test_outbox_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(fleet_store, "MAX_OUTBOX", 3)
    fs = FleetState(Store.open(tmp_path / "s.db"))
    assert fs.outbox_add([b"1", b"2", b"3", b"4", b"5"]) == 2
    assert [m for _, m in fs.outbox_peek(10)] == [b"3", b"4", b"5"]
