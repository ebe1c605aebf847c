"""SIP over TLS and the TLS check against a local TLS server with a self-signed certificate."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from pathlib import Path

import pytest

from sipguard.cli.main import main
from sipguard.core.sip import parse_message
from sipguard.testing.certs import self_signed as _self_signed


def _serve(srv: socket.socket, ctx: ssl.SSLContext, stop: threading.Event) -> None:
    srv.settimeout(0.2)
    while not stop.is_set():
        try:
            raw, _ = srv.accept()
        except TimeoutError:
            continue
        raw.settimeout(2)
        try:
            with ctx.wrap_socket(raw, server_side=True) as tls:
                data = tls.recv(65535)
                if data:
                    msg = parse_message(data)
                    keep = "".join(
                        f"{n}: {v}\r\n"
                        for n, v in msg.headers
                        if n in ("via", "from", "to", "call-id", "cseq")
                    )
                    head = f"SIP/2.0 200 OK\r\n{keep}Server: TestPBX 1.2.3\r\n"
                    tls.sendall(f"{head}Content-Length: 0\r\n\r\n".encode())
        except (OSError, ssl.SSLError):
            pass  # the probe's refused old-protocol and failed-verification handshakes


def test_tls_transport_and_untrusted_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = _self_signed(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # TLS 1.2+ only: old versions are refused
    ctx.load_cert_chain(cert, key)
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    stop = threading.Event()
    t = threading.Thread(target=_serve, args=(srv, ctx, stop), daemon=True)
    t.start()
    try:
        rc = main(
            [
                "probe",
                f"127.0.0.1:{port}",
                "--transport",
                "tls",
                "--checks",
                "fingerprint,tls",
                "--format",
                "json",
                "--timeout",
                "1",
                "--fail-on",
                "medium",
            ]
        )
    finally:
        stop.set()
        t.join(5)
        srv.close()
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    ids = {f["id"]: f for f in report["findings"]}
    assert "Server: TestPBX 1.2.3" in ids["PROBE-SIP-VERSION"]["evidence"][0]["received"]
    assert "SIP/2.0/TLS" in ids["PROBE-SIP-VERSION"]["evidence"][0]["sent"]
    assert "self-signed" in ids["PROBE-TLS-CERT"]["message"]
    assert "PROBE-TLS-OLD" not in ids
    channels = [s["channel"] for s in report["sent"]]
    # the SIP connection and OPTIONS, then one admitted entry per TLS handshake the check made
    assert channels[:2] == ["sip/tls", "sip/tls"] and set(channels[2:]) == {"tls/tcp"}
    assert 2 <= len(channels[2:]) <= 4
