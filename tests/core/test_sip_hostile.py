"""Hostile input: whatever bytes arrive, the SIP and TLS readers raise their typed error or
return a result; never any other exception."""

from __future__ import annotations

import ssl

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.core.sip import (
    Limits,
    SipParseError,
    StreamFramer,
    parse_message,
    parse_name_addr,
    parse_uri,
)
from sipguard.core.tls import TlsParseError, client_hello_sni

VALID = (
    b"REGISTER sip:secret.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776;rport\r\n"
    b'From: "A" <sip:1001@secret.example.com>;tag=19\r\n'
    b"To: <sip:1001@secret.example.com>\r\n"
    b"Call-ID: a84b4c76e66710\r\nCSeq: 3 REGISTER\r\n"
    b"Contact: <sip:1001@[2001:db8::5]:5060>\r\nContent-Length: 4\r\n\r\nbody"
)
PIECES = [b"\r\n", b" ", b":", b"<", b">", b"@", b";", b'"', b"[", b"\xff", b"\x00", b"\t", b","]
PIECES.append(b"9" * 12)
SMALL = Limits(max_message=4096, max_headers=32, max_line=512)


def _exercise(data: bytes) -> None:
    try:
        m = parse_message(data, SMALL)
    except SipParseError as exc:
        assert exc.reason and len(str(exc)) < 300
        return
    # everything reachable from a parsed message is just as safe
    for name in ("from", "to", "contact", "route"):
        for value in m.header_values(name):
            try:
                parse_name_addr(value)
            except SipParseError:
                pass
    try:
        if m.is_request:
            m.uri()
        assert m.cseq is None or m.cseq[0] >= 0
    except SipParseError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _exercise(data)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_valid_message(data: st.DataObject) -> None:
    msg = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(msg)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = data.draw(st.sampled_from(PIECES))
        if op == "insert":
            msg[pos:pos] = chunk
        elif op == "delete":
            del msg[pos : pos + len(chunk)]
        else:
            msg[pos : pos + len(chunk)] = chunk
    _exercise(bytes(msg))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_uri_and_name_addr_text(text: str) -> None:
    for parse in (parse_uri, parse_name_addr):
        try:
            parse(text)
        except SipParseError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=12))
def test_stream_framer_on_random_segments(chunks: list[bytes]) -> None:
    framer = StreamFramer(SMALL)
    for chunk in chunks:
        try:
            for msg in framer.feed(chunk):
                assert len(msg) <= SMALL.max_message
        except SipParseError:
            assert framer.broken is not None
            return
        assert framer.pending <= SMALL.max_message


def _client_hello(name: str | None) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


HELLO = _client_hello("secret.example.com")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_tls_random_bytes(data: bytes) -> None:
    try:
        client_hello_sni(data)
    except TlsParseError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(HELLO) - 1), st.binary(min_size=1, max_size=4))
def test_tls_corrupted_hello(pos: int, junk: bytes) -> None:
    data = HELLO[:pos] + junk + HELLO[pos + len(junk) :]
    try:
        sni = client_hello_sni(data)
    except TlsParseError:
        return
    assert sni is None or len(sni) <= 255
