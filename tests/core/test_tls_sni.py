"""ClientHello SNI on real ClientHellos made by Python's ssl module (OpenSSL)."""

from __future__ import annotations

import ssl

import pytest

from sipguard.core.tls import TlsIncomplete, TlsParseError, client_hello_sni


def hello(name: str | None, tls12: bool = False) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    out = ssl.MemoryBIO()
    tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return out.read()


@pytest.mark.parametrize("tls12", [False, True])
def test_sni_of_real_client_hellos(tls12: bool) -> None:
    assert client_hello_sni(hello("Secret.Example.com", tls12)) == "secret.example.com"
    assert client_hello_sni(hello(None, tls12)) is None
    assert client_hello_sni(hello("192.0.2.1", tls12)) is None  # no SNI for an IP address


def test_split_across_segments_and_records() -> None:
    data = hello("secret.example.com")
    for cut in (1, 5, 9, 40, len(data) - 1):
        with pytest.raises(TlsIncomplete):
            client_hello_sni(data[:cut])
    # the same handshake message spread over two TLS records (allowed by RFC 8446 5.1)
    body = data[5:]
    half = len(body) // 2
    two = b"\x16\x03\x01" + half.to_bytes(2, "big") + body[:half]
    two += b"\x16\x03\x01" + (len(body) - half).to_bytes(2, "big") + body[half:]
    with pytest.raises(TlsIncomplete):
        client_hello_sni(two[: 5 + half + 3])
    assert client_hello_sni(two) == "secret.example.com"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"REGISTER sip:x SIP/2.0\r\n\r\n", "not_handshake"),
        (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "not_client_hello"),
        (b"\x16\x03\x01\x00\x00", "bad_record_length"),
        (b"\x16\x02\x00\x00\x05", "bad_version"),
        (b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00", "truncated"),
    ],
)
def test_not_a_client_hello(data: bytes, reason: str) -> None:
    with pytest.raises(TlsParseError) as err:
        client_hello_sni(data)
    assert err.value.reason == reason
