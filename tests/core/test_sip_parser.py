"""The SIP parser on real message shapes: RFC 3261 examples, compact forms, folding, URIs."""

from __future__ import annotations

import pytest

from sipguard.core.sip import (
    Limits,
    SipParseError,
    StreamFramer,
    header_tag,
    parse_message,
    parse_name_addr,
    parse_uri,
)

# RFC 3261 section 24.2 (Alice's INVITE to Bob), with its SDP body
INVITE = (
    b"INVITE sip:bob@biloxi.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.com>\r\n"
    b"From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 14\r\n"
    b"\r\n"
    b"v=0\r\no=alice\r\n"
)


def test_request_line_headers_and_body() -> None:
    m = parse_message(INVITE)
    assert (m.method, m.request_uri, m.version) == ("INVITE", "sip:bob@biloxi.com", "SIP/2.0")
    assert m.is_request and m.status is None
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert m.cseq == (314159, "INVITE")
    assert m.body == b"v=0\r\no=alice\r\n"
    assert m.header("CONTENT-TYPE") == "application/sdp"
    frm = m.name_addr("from")
    assert frm is not None and frm.display == "Alice" and frm.tag == "1928301774"
    assert frm.uri.user == "alice" and frm.uri.host == "atlanta.com"


def test_status_line() -> None:
    m = parse_message(
        b"SIP/2.0 401 Unauthorized\r\nCall-ID: x\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n"
    )
    assert (m.status, m.reason, m.method) == (401, "Unauthorized", None)
    assert not m.is_request


def test_compact_forms_are_expanded() -> None:
    m = parse_message(
        b"OPTIONS sip:x@example.com SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\r\n"
        b"f: <sip:a@example.com>;tag=9\r\nt: <sip:x@example.com>\r\ni: cid-1\r\n"
        b"m: <sip:a@192.0.2.1>\r\nk: path\r\nl: 0\r\n\r\n"
    )
    assert m.header("via") == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa"
    assert m.header("Call-ID") == m.header("i") == "cid-1"
    assert m.header("supported") == "path"
    assert header_tag(m.header("from")) == "9"
    assert [name for name, _ in m.headers] == [
        "via", "from", "to", "call-id", "contact", "supported", "content-length",
    ]  # fmt: skip


def test_folding_and_repeated_and_comma_joined_headers() -> None:
    m = parse_message(
        b"INVITE sip:x@example.com SIP/2.0\r\n"
        b"Subject: I know you're there,\r\n"
        b"         pick up the phone\r\n"
        b"\t and talk to me!\r\n"
        b"Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
        b"Route: <sip:p3.example.com;lr>\r\n"
        b'Contact: "Quoted, with comma" <sip:a@h>, <sip:b@h>\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    assert m.header("subject") == "I know you're there, pick up the phone and talk to me!"
    assert m.header_values("route") == [
        "<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>", "<sip:p3.example.com;lr>",
    ]  # fmt: skip
    assert m.header_values("m") == ['"Quoted, with comma" <sip:a@h>', "<sip:b@h>"]


def test_udp_body_is_cut_to_content_length_and_short_body_is_an_error() -> None:
    long = INVITE + b"garbage after the body"
    assert parse_message(long).body == b"v=0\r\no=alice\r\n"
    with pytest.raises(SipParseError) as err:
        parse_message(INVITE[:-4])
    assert err.value.reason == "truncated_body"
    with pytest.raises(SipParseError) as err:
        parse_message(long, stream=True)
    assert err.value.reason == "trailing_data"


@pytest.mark.parametrize(
    ("uri", "expect"),
    [
        ("sip:alice@atlanta.com", ("sip", "alice", None, "atlanta.com", None)),
        ("sips:alice:secretword@Atlanta.COM:5061;transport=tcp",
         ("sips", "alice", "secretword", "atlanta.com", 5061)),
        ("sip:+1-212-555-1212:1234@gateway.com;user=phone",
         ("sip", "+1-212-555-1212", "1234", "gateway.com", None)),
        ("sip:[2001:db8::1]:5070", ("sip", None, None, "[2001:db8::1]", 5070)),
        ("sip:100@192.0.2.4", ("sip", "100", None, "192.0.2.4", None)),
        ("tel:+358-555-1234567;postd=pp22", ("tel", "+358-555-1234567", None, None, None)),
    ],
)  # fmt: skip
def test_uris(uri: str, expect: tuple[object, ...]) -> None:
    u = parse_uri(uri)
    assert (u.scheme, u.user, u.password, u.host, u.port) == expect


def test_uri_params_and_headers() -> None:
    u = parse_uri("sip:atlanta.com;method=REGISTER;lr?to=alice%40atlanta.com&priority=urgent")
    assert u.param("method") == "REGISTER" and u.param("lr") == "" and u.param("x") is None
    assert u.headers == (("to", "alice%40atlanta.com"), ("priority", "urgent"))


@pytest.mark.parametrize(
    "bad",
    ["sip:", "sip:a@", "sip:a@host:99999", "sip:a@[::1", "sip:a b@host", "http//x", "sip:a@ho_st"],
)
def test_bad_uris(bad: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(bad)


def test_name_addr_forms() -> None:
    a = parse_name_addr('"Mr. \\"Watson\\"" <sip:watson@worcester.bell-telephone.com>;tag=88')
    assert a.display == 'Mr. "Watson"' and a.tag == "88"
    b = parse_name_addr("sip:100@192.0.2.1;tag=abc")  # addr-spec: params belong to the header
    assert b.uri.params == () and b.tag == "abc" and b.display is None
    c = parse_name_addr("Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8")
    assert c.display == "Anonymous" and c.uri.host == "privacy.org"
    # a ";tag=" inside the URI is a URI parameter, not the header's tag
    assert header_tag("<sip:a@h;tag=inuri>") is None
    assert header_tag("<sip:a@h;tag=inuri>;tag=real") == "real"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\r\n", "empty"),
        (b"HELLO\r\n\r\n", "bad_request_line"),
        (b"INVITE sip:a@b SIP/2.0\r\nno colon here\r\n\r\n", "bad_header"),
        (b"INVITE sip:a@b SIP/2.0\r\n folded-first: x\r\n\r\n", "bad_folding"),
        (b"INVITE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n", "bad_content_length"),
        (b"SIP/2.0 99 Too Low\r\n\r\n", "bad_status_line"),
        (b"INVITE sip:a@b SIP/2.0\r\nX: \xff\xfe\r\n\r\n", "bad_encoding"),
        (b"INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n", "bad_header"),
    ],
)
def test_malformed_reasons(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(data)
    assert err.value.reason == reason


def test_size_limits() -> None:
    limits = Limits(max_message=2000, max_headers=10, max_line=100)
    many = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-H: 1\r\n" * 11 + b"\r\n"
    long_line = b"OPTIONS sip:a@b SIP/2.0\r\nX-H: " + b"a" * 200 + b"\r\n\r\n"
    big = b"OPTIONS sip:a@b SIP/2.0\r\n" + b"X-H: 1\r\n" * 300
    for data, reason in ((many, "too_many_headers"), (long_line, "line_too_long"),
                         (big, "too_large")):  # fmt: skip
        with pytest.raises(SipParseError) as err:
            parse_message(data, limits)
        assert err.value.reason == reason


def test_stream_framer_splits_and_joins() -> None:
    reg = b"REGISTER sip:example.com SIP/2.0\r\nCall-ID: 1\r\nl: 0\r\n\r\n"
    stream = b"\r\n\r\n" + INVITE + reg + INVITE  # keep-alive ping, then three messages
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(stream), 7):  # seven-byte segments: every message is split
        out += framer.feed(stream[i : i + 7])
    assert out == [INVITE, reg, INVITE] and framer.pending == 0
    framer = StreamFramer()
    assert framer.feed(stream) == [INVITE, reg, INVITE]  # all three in one segment
    assert [parse_message(m, stream=True).method for m in out] == ["INVITE", "REGISTER", "INVITE"]


def test_stream_framer_breaks_for_good() -> None:
    framer = StreamFramer(Limits(max_message=200))
    with pytest.raises(SipParseError) as err:
        framer.feed(b"INVITE sip:a@b SIP/2.0\r\nCall-ID: 1\r\n\r\n")
    assert err.value.reason == "missing_content_length"
    with pytest.raises(SipParseError):
        framer.feed(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n")  # stays broken
    framer = StreamFramer(Limits(max_message=200))
    with pytest.raises(SipParseError) as err:
        framer.feed(b"X" * 201)  # no end of head within the limit
    assert err.value.reason == "too_large"
