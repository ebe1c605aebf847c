"""`sipguard probe` end to end over real UDP sockets against a leaky responder on loopback."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest
from fakepbx import FakePbx

from sipguard.cli.main import main

SIP_CHECKS = "fingerprint,enumeration,toll,guests,credentials"


def _run(capsys: pytest.CaptureFixture[str], port: int, *args: str) -> tuple[int, str]:
    rc = main(["probe", f"127.0.0.1:{port}", "--timeout", "0.5", *args])
    return rc, capsys.readouterr().out


def _probe(capsys: pytest.CaptureFixture[str], port: int, *args: str) -> tuple[int, dict[str, Any]]:
    rc, out = _run(capsys, port, "--format", "json", *args)
    return rc, json.loads(out)


def test_leaky_responder_findings_and_exact_send_count(capsys: pytest.CaptureFixture[str]) -> None:
    with FakePbx() as pbx:
        rc, report = _probe(
            capsys,
            pbx.port,
            "--checks",
            SIP_CHECKS,
            "--extensions",
            "100-101",
            "--account",
            "100",
            "--guess",
            "10",
            "--rate",
            "500",
            "--fail-on",
            "high",
        )
    assert rc == 1  # critical findings and --fail-on high
    ids = {f["id"] for f in report["findings"]}
    assert {"PROBE-SIP-VERSION", "PROBE-SIP-ENUM", "PROBE-TOLL-CALL", "PROBE-WEAK-SECRET"} <= ids
    enum = [f for f in report["findings"] if f["id"] == "PROBE-SIP-ENUM"]
    assert {f["data"]["method"] for f in enum} == {"REGISTER", "SUBSCRIBE", "INVITE"}
    assert all(f["data"]["confirmed"] == ["100"] for f in enum)
    weak = next(f for f in report["findings"] if f["id"] == "PROBE-WEAK-SECRET")
    assert weak["data"]["tries"] == 6  # 100, 001, 100100, 100123, 123100, then 1234
    toll = next(f for f in report["findings"] if f["id"] == "PROBE-TOLL-CALL")
    assert "CANCEL sip:00442079460000@127.0.0.1" in toll["evidence"][0]["sent"]
    # every datagram the responder got is in the report, in order, and nothing else
    assert report["sent_count"] == len(pbx.received) == len(report["sent"])
    assert [s["data"].encode() for s in report["sent"]] == pbx.received


def test_a_200_that_slips_through_is_hung_up_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    with FakePbx(answer_invite=True) as pbx:
        _, report = _probe(capsys, pbx.port, "--checks", "toll")
    toll = next(f for f in report["findings"] if f["id"] == "PROBE-TOLL-CALL")
    assert toll["data"]["answered"] is True
    methods = [m.split(b" ", 1)[0] for m in pbx.received]
    assert methods == [b"INVITE", b"ACK", b"BYE"]


def test_garbage_answers_are_evidence_not_a_crash(capsys: pytest.CaptureFixture[str]) -> None:
    with FakePbx(garbage=True) as pbx:
        _, report = _probe(capsys, pbx.port, "--checks", "fingerprint,toll")
    assert "PROBE-TOLL-CALL" in {f["id"] for f in report["findings"]}
    assert report["stopped"] is None


def test_silence_is_reported_and_bounded(capsys: pytest.CaptureFixture[str]) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))  # a port that reads and never answers
    with sock:
        rc, report = _probe(capsys, sock.getsockname()[1], "--checks", "fingerprint,toll")
    assert rc == 0 and report["findings"] == []
    notes = {n["check"]: n["note"] for n in report["checks"]}
    assert "no answer" in notes["fingerprint"]
    assert "silent" in notes["toll"]


def test_packet_budget_stops_the_probe(capsys: pytest.CaptureFixture[str]) -> None:
    with FakePbx() as pbx:
        _, report = _probe(
            capsys, pbx.port, "--checks", "enumeration", "--max-packets", "5", "--rate", "500"
        )
    assert report["stopped"] == "packet budget of 5 spent"
    assert report["sent_count"] == 5 == len(pbx.received)


def test_ami_banner_to_a_stranger(capsys: pytest.CaptureFixture[str]) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"Asterisk Call Manager/9.0.0\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    with srv, FakePbx() as pbx:
        rc, report = _probe(
            capsys, pbx.port, "--checks", "ami", "--ami-port", str(port), "--fail-on", "high"
        )
    t.join(5)
    assert rc == 1
    (ami,) = report["findings"]
    assert ami["id"] == "PROBE-AMI-OPEN" and ami["audit_ids"] == ["AMI-BIND", "AMI-NOACL"]
    assert ami["evidence"][0]["received"] == "Asterisk Call Manager/9.0.0\r\n"
    assert [s["channel"] for s in report["sent"]] == ["ami/tcp"]


def test_sarif_and_text_formats(capsys: pytest.CaptureFixture[str]) -> None:
    with FakePbx() as pbx:
        rc, out = _run(capsys, pbx.port, "--checks", "fingerprint", "--format", "sarif")
        sarif = json.loads(out)
        rc2, text = _run(capsys, pbx.port, "--checks", "fingerprint", "--evidence")
    assert rc == rc2 == 0
    run = sarif["runs"][0]
    assert run["tool"]["driver"]["name"] == "sipguard-probe"
    assert {r["ruleId"] for r in run["results"]} == {"PROBE-SIP-OPTIONS", "PROBE-SIP-VERSION"}
    assert run["properties"]["sentCount"] == 1
    assert "low      PROBE-SIP-VERSION: the PBX names its product and version" in text
    assert "Server: Asterisk PBX 20.20.1" in text  # --evidence prints the answer verbatim
