"""core.calls: AMI call events and CDR records become the project's Events (CALL_* kinds)."""

from __future__ import annotations

from ipaddress import ip_address

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.core.calls import CallNormalizer, account_of, address_of, record_event
from sipguard.core.events import Event, Kind, Service

T = 1_763_780_000.0


def ami(fields: dict[str, str]):  # type: ignore[no-untyped-def]
    low = {k.lower(): v for k, v in fields.items()}
    return lambda key: low.get(key.lower())


def feed(n: CallNormalizer, name: str, t: float, **fields: str) -> list[Event]:
    return n.feed(name, ami({"Event": name, **fields}), t)


def test_one_outbound_call_dial_answer_hangup() -> None:
    n = CallNormalizer()
    chan = {"Channel": "PJSIP/1001-0000001a", "Uniqueid": "u1", "Exten": "00881612345"}
    assert feed(n, "Newchannel", T, **chan) == []
    (start,) = feed(n, "DialBegin", T + 1, **chan, DialString="00881612345@trunk")
    assert (start.kind, start.account, start.target, start.call_id) == (
        Kind.CALL_START,
        "1001",
        "00881612345",
        "u1",
    )
    assert start.service is Service.AMI and start.call is not None
    assert (start.call.start, start.call.channel, start.call.answered) == (
        T + 1,
        "PJSIP/1001-0000001a",
        False,
    )
    assert feed(n, "DialBegin", T + 1, **chan) == []  # a forked dial: checked once
    assert feed(n, "DialEnd", T + 2, Uniqueid="u1", DialStatus="BUSY") == []
    (answer,) = feed(n, "BridgeEnter", T + 3, Uniqueid="u1")
    assert answer.kind is Kind.CALL_ANSWER and answer.call and answer.call.answer == T + 3
    assert feed(n, "DialEnd", T + 3, Uniqueid="u1", DialStatus="ANSWER") == []  # once
    (end,) = feed(n, "Hangup", T + 63, Uniqueid="u1")
    assert end.kind is Kind.CALL_END and end.call is not None
    assert (end.call.end, end.call.billsec, end.call.answered, end.call.record) == (
        T + 63,
        60.0,
        True,
        False,
    )
    assert "u1" not in n.channels and "u1" in n.seen_uids
    assert n.counters["calls"] == 1


def test_dialstring_when_exten_is_s_and_timestamp_wins() -> None:
    n = CallNormalizer()
    (ev,) = feed(
        n,
        "DialBegin",
        T,
        Channel="SIP/office-7-00000003",
        Uniqueid="u2",
        Exten="s",
        DialString="PJSIP/0044207946@trunk,60",
        Timestamp="1763780123.5",
    )
    assert (ev.account, ev.target, ev.time) == ("office-7", "0044207946", 1763780123.5)


def test_cdr_event_is_a_record_unless_the_call_was_followed_live() -> None:
    n = CallNormalizer()
    cdr = {
        "UniqueID": "c1",
        "Channel": "PJSIP/1005-00000001",
        "Destination": "09001234567",
        "Duration": "30",
        "BillableSeconds": "25",
        "Disposition": "ANSWERED",
    }
    (ev,) = feed(n, "Cdr", T, **cdr)
    assert ev.kind is Kind.CALL_END and ev.call is not None and ev.call.record
    assert (ev.account, ev.target, ev.call.start, ev.call.billsec) == (
        "1005",
        "09001234567",
        T - 30,
        25,
    )
    feed(n, "DialBegin", T, Channel="PJSIP/1005-2", Uniqueid="c2", Exten="0301234")
    assert feed(n, "Cdr", T, **{**cdr, "UniqueID": "c2"}) == []  # seen live: not twice
    assert feed(n, "Cdr", T, **{**cdr, "UniqueID": "c3", "Duration": "x"}) == []
    assert n.counters["malformed"] == 1


def test_registrations_become_auth_success_with_the_address() -> None:
    n = CallNormalizer()
    (a,) = feed(n, "ContactStatus", T, ContactStatus="Reachable", EndpointName="1001",
                URI="sip:1001@203.0.113.5:5060;ob")  # fmt: skip
    (b,) = feed(n, "PeerStatus", T, PeerStatus="Registered", Peer="SIP/1002",
                Address="198.51.100.7:5060")  # fmt: skip
    (c,) = feed(n, "SuccessfulAuth", T, Service="PJSIP", AccountID="1003",
                RemoteAddress="IPV6/UDP/2001:db8::5/5060")  # fmt: skip
    assert [(e.kind, e.account, e.ip) for e in (a, b, c)] == [
        (Kind.AUTH_SUCCESS, "1001", ip_address("203.0.113.5")),
        (Kind.AUTH_SUCCESS, "1002", ip_address("198.51.100.7")),
        (Kind.AUTH_SUCCESS, "1003", ip_address("2001:db8::5")),
    ]
    assert feed(n, "SuccessfulAuth", T, Service="AMI", AccountID="x", RemoteAddress="a") == []
    assert feed(n, "PeerStatus", T, PeerStatus="Registered", Peer="SIP/9", Address="host") == []


def test_channels_are_bounded_and_drops_counted() -> None:
    n = CallNormalizer(max_channels=10)
    for i in range(25):
        feed(n, "Newchannel", T, Channel=f"PJSIP/1-{i}", Uniqueid=f"u{i}")
    assert len(n.channels) == 10 and n.counters["dropped_channels"] == 15
    assert feed(n, "Newchannel", T, Channel="PJSIP/1-x") == []  # no Uniqueid
    assert n.counters["malformed"] == 1


def test_record_event_and_json_round_trip() -> None:
    ev = record_event("", "1001", "0044", T, T + 9, 7, True, "PJSIP/1001-1", "192.0.2.9", 4, "f")
    assert ev.kind is Kind.CALL_END and ev.time == T + 9 and ev.ip == ip_address("192.0.2.9")
    assert ev.origin.source == "f" and ev.origin.line_no == 4
    assert Event.from_dict(ev.to_dict()) == ev
    bad_ip = record_event("u", "1", "2", T, None, 0, False, "", "not-an-ip", 1, "f")
    assert bad_ip.ip is None and bad_ip.time == T


def test_events_without_a_call_keep_their_json() -> None:
    """Log events' JSON (scan --format json, the store) has no `call` key."""
    ev = Event(T, Kind.WRONG_PASSWORD, Service.PJSIP, ip_address("192.0.2.1"), account="1001")
    assert "call" not in ev.to_dict() and Event.from_dict(ev.to_dict()) == ev


def test_helpers() -> None:
    assert account_of("PJSIP/office-phone-7-00000012") == "office-phone-7"
    assert account_of("Local/100@ctx-00000001;1", "acct", "100") == "acct"
    assert address_of("sip:1001@[2001:db8::1]:5060") == "2001:db8::1"


NAMES = ["Newchannel", "DialBegin", "DialEnd", "BridgeEnter", "Hangup", "Cdr", "CEL",
         "SuccessfulAuth", "ContactStatus", "PeerStatus", "Other"]  # fmt: skip
KEYS = ["Uniqueid", "UniqueID", "Channel", "Exten", "DialString", "DialStatus", "Duration",
        "BillableSeconds", "EventName", "Application", "Timestamp", "URI", "Address", "Peer",
        "PeerStatus", "ContactStatus", "EndpointName", "AccountID", "RemoteAddress"]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(NAMES),
            st.dictionaries(st.sampled_from(KEYS), st.text(max_size=300), max_size=8),
        ),
        max_size=30,
    )
)
def test_garbage_never_crashes_and_stays_bounded(msgs: list[tuple[str, dict[str, str]]]) -> None:
    n = CallNormalizer(max_channels=5)
    for name, fields in msgs:
        for ev in n.feed(name, ami(fields), T):
            assert len(ev.account or "") <= 80 and len(ev.target or "") <= 64
            assert ev.call is None or (len(ev.call.uid) <= 150 and len(ev.call.channel) <= 200)
    assert len(n.channels) <= 5 and len(n.seen_uids) <= 20


# Newchannel and Hangup of a carrier's call answered by an IVR, as Asterisk 20.20.1 sent them
# in tests/e2e/test_cdr_asterisk.py's lab (the fields the normalizer reads)
IVR_CALL = {
    "Channel": "PJSIP/carrier-00000000",
    "CallerIDNum": "sipp",
    "AccountCode": "",
    "Context": "from-pstn",
    "Exten": "0301234567",
    "Uniqueid": "1796591751.0",
    "Linkedid": "1796591751.0",
}


def test_a_call_that_never_dials_out_ends_as_its_record() -> None:
    n = CallNormalizer()
    assert feed(n, "Newchannel", T, **IVR_CALL) == []
    # seen from its first event: cdr_csv may write the row before the Hangup event arrives
    assert "1796591751.0" in n.seen_uids
    assert feed(n, "Newstate", T + 1, **IVR_CALL) == []
    (end,) = feed(n, "Hangup", T + 21, **IVR_CALL, Cause="16")
    assert end.kind is Kind.CALL_END and end.call is not None and end.call.record
    assert (end.account, end.target, end.call_id) == ("carrier", "0301234567", "1796591751.0")
    assert (end.call.start, end.call.end, end.call.context) == (T, T + 21, "from-pstn")
    assert n.counters["undialled"] == 1 and n.counters["calls"] == 0
    assert "1796591751.0" in n.seen_uids  # its CDR is then skipped
    cdr = {"UniqueID": "1796591751.0", "Channel": IVR_CALL["Channel"], "Duration": "21"}
    assert feed(n, "Cdr", T + 21, **cdr) == []


def test_a_dialled_leg_and_a_channel_without_linkedid_end_silently() -> None:
    n = CallNormalizer()
    leg = {**IVR_CALL, "Channel": "PJSIP/1001-00000001", "Uniqueid": "u2", "Context": "phones"}
    assert feed(n, "Newchannel", T, **leg) == []  # Linkedid: the caller's
    assert feed(n, "Hangup", T + 5, **leg) == []
    old = {k: v for k, v in IVR_CALL.items() if k != "Linkedid"} | {"Uniqueid": "u3"}
    assert feed(n, "Newchannel", T, **old) == []  # no Linkedid: nothing to tell a leg by
    assert feed(n, "Hangup", T + 5, **old) == []
    assert n.counters["undialled"] == 0 and not n.seen_uids
