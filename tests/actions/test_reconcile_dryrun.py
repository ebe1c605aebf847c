"""Pure reconcile algebra, timeouts, port parsing, and the dry-run backend."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.actions import (
    DryRunFirewall,
    FirewallConfig,
    Ports,
    make_firewall,
    parse_ports,
)
from sipguard.actions.protocol import timeouts
from sipguard.core.alerts import Action, Decision
from sipguard.core.reconcile import collapse, diff, diff_timed

N = ip_network
T0 = 1_700_000_000.0


def d(net: str, secs: float | None, action: Action = Action.BAN, start: float = T0) -> Decision:
    return Decision(N(net), action, "r", "x", start, None if secs is None else start + secs)


@settings(max_examples=100, deadline=None)  # shared CI cores: no flaky deadlines
@given(st.sets(st.integers(0, 50)), st.sets(st.integers(0, 50)))
def test_diff_makes_current_equal_desired(cur, want):
    add, remove = diff(cur, want)
    assert (cur - remove) | add == want
    assert not (add & cur) and remove <= cur


def test_diff_timed_refreshes_wrong_timeouts():
    cur = {
        N("192.0.2.1"): 100.0,
        N("192.0.2.2"): 100.0,
        N("192.0.2.3"): None,
        N("192.0.2.4"): 98.0,
        N("192.0.2.5"): 10.0,
    }
    want = {
        N("192.0.2.1"): 3600.0,
        N("192.0.2.2"): None,
        N("192.0.2.3"): 60.0,
        N("192.0.2.4"): 100.0,
        N("192.0.2.6"): 5.0,
    }
    r = diff_timed(cur, want)
    assert r.to_add == {N("192.0.2.1"), N("192.0.2.2"), N("192.0.2.3"), N("192.0.2.6")}
    assert r.to_remove == {N("192.0.2.5")}
    assert r.kept == {N("192.0.2.4")}


def test_collapse_keeps_widest_per_family():
    nets = [
        N("10.0.0.0/8"),
        N("10.1.0.0/16"),
        N("10.1.2.3"),
        N("11.0.0.1"),
        N("2001:db8::/32"),
        N("2001:db8:1::/64"),
        N("::/0"),
    ]
    assert collapse(nets) == {N("10.0.0.0/8"), N("11.0.0.1"), N("::/0")}


def test_timeouts_merge_and_skip():
    ds = [
        d("192.0.2.1", 60),
        d("192.0.2.1", 600),
        d("192.0.2.2", None),
        d("192.0.2.2", 5),
        d("192.0.2.3", 10, start=T0 - 20),
        d("192.0.2.4", 60, Action.ALERT),
        d("192.0.2.5", 0.2),
    ]
    assert timeouts(ds, T0) == {N("192.0.2.1"): 600, N("192.0.2.2"): None, N("192.0.2.5"): 1}


def test_ports_parsing():
    assert parse_ports("5060-5061, 4569") == [(5060, 5061), (4569, 4569)]
    assert parse_ports("") == []
    for bad in ("0", "70000", "5061-5060", "sip", "5060;rm", "1-2-3", "5060," * 400):
        with pytest.raises(ValueError):
            parse_ports(bad)
    with pytest.raises(ValueError, match="udp"):
        Ports(udp="abc")
    with pytest.raises(ValueError, match="table"):
        FirewallConfig(table="bad;name")
    with pytest.raises(ValueError, match="netns"):
        FirewallConfig(netns="../etc")
    with pytest.raises(ValueError, match="backend"):
        make_firewall("pf")


def test_dry_run_records_and_expires():
    clock = [T0]
    fw = make_firewall("dry-run", FirewallConfig())
    assert isinstance(fw, DryRunFirewall)
    fw = DryRunFirewall(clock=lambda: clock[0])
    fw.init()
    fw.add([d("192.0.2.1", 60), d("2001:db8::/64", None), d("192.0.2.9", 5, Action.SIMULATE)], T0)
    assert fw.list() == {N("192.0.2.1"): 60, N("2001:db8::/64"): None}
    assert [(o.verb, str(o.network)) for o in fw.ops if o.verb == "flush"] == [
        ("flush", "192.0.2.1/32"),
        ("flush", "2001:db8::/64"),
    ]
    clock[0] += 61
    assert fw.list() == {N("2001:db8::/64"): None}
    res = fw.reconcile([d("192.0.2.7", 100, start=clock[0])], clock[0])
    assert res.added == (N("192.0.2.7"),) and res.removed == (N("2001:db8::/64"),)
    fw.remove([N("192.0.2.7")])
    assert fw.list() == {}
    fw.teardown()
    assert fw.ops[-1].verb == "teardown" and not fw.initialized


def test_nft_command_fallback_when_library_missing(monkeypatch):
    from sipguard.actions import NftablesFirewall, pick_backend
    from sipguard.actions.libnft import _Lib

    def missing() -> _Lib:
        raise OSError("libnftables.so.1: cannot open shared object file")

    monkeypatch.setattr(_Lib, "get", staticmethod(missing))
    assert NftablesFirewall(FirewallConfig()).via == "nft"
    assert pick_backend() == "nftables"  # the nft command is still there
    assert isinstance(make_firewall("auto"), NftablesFirewall)
