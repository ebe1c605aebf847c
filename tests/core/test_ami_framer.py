"""The sans-I/O AMI framer: byte splits, garbage, limits, Follows output, action building."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.core.ami import AmiError, AmiFramer, AmiMessage, build_action, md5_key

BANNER = b"Asterisk Call Manager/9.0.0\r\n"
# An Asterisk 20 security event as it arrives on the wire (asterisk-formats.md section 4)
SECURITY = (
    b"Event: InvalidAccountID\r\n"
    b"Privilege: security,all\r\n"
    b"EventTV: 2026-11-22T01:34:38.416+0000\r\n"
    b"Severity: Error\r\n"
    b"Service: PJSIP\r\n"
    b"EventVersion: 1\r\n"
    b"AccountID: 100\r\n"
    b"SessionID: 112717373465392047778909\r\n"
    b"LocalAddress: IPV4/UDP/127.0.0.1/5060\r\n"
    b"RemoteAddress: IPV4/UDP/127.0.0.1/5061\r\n"
    b"\r\n"
)
CHALLENGE = b"Response: Success\r\nActionID: 7\r\nChallenge: \r\n\r\n"
VARS = (
    b"Event: Newchannel\r\nPrivilege: call,all\r\n"
    b"ChanVariable: A=1\r\nChanVariable: B=2\r\nUniqueid: 1.1\r\n\r\n"
)
STREAM = BANNER + SECURITY + CHALLENGE + VARS


def test_whole_stream() -> None:
    f = AmiFramer()
    msgs = f.feed(STREAM)
    assert f.version == "9.0.0"
    assert [m.name for m in msgs] == ["InvalidAccountID", "Success", "Newchannel"]
    ev, resp, chan = msgs
    assert ev.is_event and not ev.is_response
    assert ev.get("remoteaddress") == "IPV4/UDP/127.0.0.1/5061"
    assert ev.get("REMOTEADDRESS") == ev.get("RemoteAddress")
    assert ev.fields[0] == ("Event", "InvalidAccountID")
    assert resp.is_response and resp.action_id == "7"
    assert resp.get("Challenge") == ""  # present but empty, not missing
    assert "Challenge" in resp and "Missing" not in resp
    assert chan.get_all("chanvariable") == ["A=1", "B=2"]
    assert chan.get("ChanVariable") == "A=1"
    assert f.errors == {}


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_byte(cut: int) -> None:
    whole = AmiFramer().feed(STREAM)
    f = AmiFramer()
    got = f.feed(STREAM[:cut]) + f.feed(STREAM[cut:])
    assert got == whole
    assert f.version == "9.0.0"


def test_byte_by_byte() -> None:
    f = AmiFramer()
    got: list[AmiMessage] = []
    for i in range(len(STREAM)):
        got += f.feed(STREAM[i : i + 1])
    assert got == AmiFramer().feed(STREAM)


def test_lf_only_and_one_space_stripped() -> None:
    f = AmiFramer()
    (m,) = f.feed(b"Asterisk Call Manager/11.0.0\nEvent: X\nA:  two spaces\nB:none\nC: \n\n")
    assert f.version == "11.0.0"
    assert m.get("A") == " two spaces"
    assert m.get("B") == "none"
    assert m.get("C") == ""


def test_no_banner_and_stray_blank_lines() -> None:
    f = AmiFramer()
    msgs = f.feed(b"\r\n\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n")
    assert [m.name for m in msgs] == ["A", "B"]
    assert f.banner is None and f.version is None


def test_follows_command_output() -> None:
    data = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: 9\r\n"
        b"Name/username: 1001\r\n\r\nsecond: block\r\n--END COMMAND--\r\n\r\n"
        b"Event: After\r\n\r\n"
    )
    f = AmiFramer(expect_banner=False)
    follows, after = f.feed(data)
    assert follows.name == "Follows" and follows.action_id == "9"
    assert follows.output == ("Name/username: 1001", "", "second: block")
    assert follows.get("Name/username") is None  # output is not mistaken for fields
    assert after.name == "After"


def test_follows_marker_glued_to_last_line() -> None:
    f = AmiFramer(expect_banner=False)
    (m,) = f.feed(b"Response: Follows\r\nPrivilege: Command\r\nout--END COMMAND--\r\n\r\n")
    assert m.output == ("out",)


def test_garbage_lines_counted_message_kept() -> None:
    f = AmiFramer(expect_banner=False)
    (m,) = f.feed(b"Event: X\r\nno colon here\r\n: empty key\r\nA: 1\r\n\r\n")
    assert m.fields == (("Event", "X"), ("A", "1"))
    assert f.errors == {"bad_line": 2}


def test_oversize_counted_and_resync() -> None:
    f = AmiFramer(expect_banner=False, max_message_bytes=200)
    big = b"Event: Big\r\n" + b"X: " + b"y" * 500 + b"\r\nZ: 1\r\n\r\n"
    assert f.feed(big + b"Event: Ok\r\n\r\n") == [AmiMessage((("Event", "Ok"),))]
    assert f.errors == {"oversize": 1}


def test_oversize_partial_line_memory_bounded() -> None:
    f = AmiFramer(expect_banner=False, max_message_bytes=1000)
    for _ in range(100):
        assert f.feed(b"A" * 999) == []
        assert len(f._buf) < 1000
    assert f.errors == {"oversize": 1}
    assert [m.name for m in f.feed(b"\r\n\r\nEvent: Next\r\n\r\n")] == ["Next"]


def test_too_many_fields() -> None:
    f = AmiFramer(expect_banner=False, max_fields=3)
    data = b"Event: A\r\nB: 1\r\nC: 2\r\nD: 3\r\n\r\nEvent: Fine\r\n\r\n"
    assert [m.name for m in f.feed(data)] == ["Fine"]
    assert f.errors == {"too_many_fields": 1}


def test_invalid_utf8_does_not_crash() -> None:
    f = AmiFramer(expect_banner=False)
    (m,) = f.feed(b"Event: X\r\nA: \xff\xfe\r\n\r\n")
    assert m.get("A") == "\ufffd\ufffd"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_hypothesis_garbage_never_crashes(data: bytes, chunk: int) -> None:
    f = AmiFramer(max_message_bytes=256, max_fields=8)
    for i in range(0, len(data), chunk):
        for m in f.feed(data[i : i + chunk]):
            assert len(m.fields) <= 8
            assert m.fields  # never an empty message
    assert len(f._buf) <= 256
    # after any garbage, a clean message still comes through
    assert [m.name for m in f.feed(b"\r\n\r\nEvent: Alive\r\n\r\n")][-1:] == ["Alive"]


_key = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=":"),
    min_size=1,
    max_size=12,
)
_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_key, _value), min_size=0, max_size=10), st.integers(1, 30))
def test_hypothesis_build_then_parse_roundtrip(pairs: list[tuple[str, str]], cut: int) -> None:
    wire = build_action("Test", pairs, "id-1")
    f = AmiFramer(expect_banner=False)
    msgs = f.feed(wire[:cut]) + f.feed(wire[cut:])
    assert len(msgs) == 1
    assert msgs[0].fields == (("Action", "Test"), ("ActionID", "id-1"), *pairs)


def test_build_action_bytes() -> None:
    assert build_action("Hangup", {"Channel": "PJSIP/1001-0001"}, "a1") == (
        b"Action: Hangup\r\nActionID: a1\r\nChannel: PJSIP/1001-0001\r\n\r\n"
    )
    wire = build_action("Originate", [("Variable", "A=1"), ("Variable", "B=2")])
    assert wire == b"Action: Originate\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"


@pytest.mark.parametrize(
    "name,fields,action_id",
    [
        ("Hangup", {"Channel": "x\r\nAction: Originate"}, None),
        ("Hangup", {"Channel": "x\nAction: Originate"}, None),
        ("Hangup", {"Channel": "x\rY"}, None),
        ("Hangup", {"Channel": "x\0"}, None),
        ("Hangup", {"Chan\nnel": "x"}, None),
        ("Hangup", {"Chan:nel": "x"}, None),
        ("Hangup\r\nAction: Originate", {}, None),
        ("", {}, None),
        ("Hangup", {}, "1\r\nAction: Originate"),
    ],
)
def test_build_action_rejects_injection(
    name: str, fields: dict[str, str], action_id: str | None
) -> None:
    with pytest.raises(AmiError):
        build_action(name, fields, action_id)


def test_md5_key_matches_manager_c() -> None:
    # manager.c: hex of MD5Update(challenge) then MD5Update(secret), lower case
    assert md5_key("1234567", "s3cret") == hashlib.md5(b"1234567s3cret").hexdigest()
    assert md5_key("1", "x") != md5_key("1", "y")
