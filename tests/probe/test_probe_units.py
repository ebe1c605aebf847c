"""Pure parts of the probe: request building, digest, ledger bounds, target safety, ids, CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipguard.cli.main import main
from sipguard.core.sip import parse_message
from sipguard.probe.ids import AUDIT_IDS, confirmed
from sipguard.probe.ledger import Budget, BudgetSpent, Ledger
from sipguard.probe.request import (
    Challenge,
    Request,
    ack_for,
    bye_for,
    cancel_for,
    digest_authorization,
    parse_challenge,
)
from sipguard.probe.safety import parse_networks, refusal, split_target
from sipguard.probe.session import SipClient, Target

INVITE = Request(
    "INVITE",
    "sip:00442079460000@192.0.2.1",
    "SIP/2.0/UDP 192.0.2.9:5555",
    "z9hG4bKa1",
    "<sip:probe@192.0.2.1>",
    "ft1",
    "<sip:00442079460000@192.0.2.1>",
    "cid1@probe",
    7,
    extra=(("Contact", "<sip:probe@192.0.2.9:5555>"),),
    body=b"v=0\r\n",
)
RINGING = parse_message(
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.9:5555;branch=z9hG4bKa1\r\n"
    b"From: <sip:probe@192.0.2.1>;tag=ft1\r\nTo: <sip:00442079460000@192.0.2.1>;tag=pbx9\r\n"
    b"Call-ID: cid1@probe\r\nCSeq: 7 INVITE\r\nContact: <sip:00442079460000@192.0.2.1:5070>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def test_built_requests_parse_and_keep_the_transaction() -> None:
    msg = parse_message(INVITE.encode())
    assert (msg.method, msg.call_id, msg.cseq) == ("INVITE", "cid1@probe", (7, "INVITE"))
    assert msg.body == b"v=0\r\n" and msg.header("content-type") == "application/sdp"
    cancel = parse_message(cancel_for(INVITE).encode())
    # RFC 3261 9.1: same URI, branch, From, To, Call-ID, CSeq number; no body
    assert cancel.request_uri == INVITE.uri and cancel.cseq == (7, "CANCEL")
    assert "branch=z9hG4bKa1" in (cancel.header("via") or "") and cancel.body == b""
    assert cancel.header("to") == "<sip:00442079460000@192.0.2.1>"
    ack = parse_message(ack_for(INVITE, RINGING, "z9hG4bKnew").encode())
    # a 2xx is acknowledged in a new transaction, at the Contact, with the remote tag
    assert ack.request_uri == "sip:00442079460000@192.0.2.1:5070" and ack.cseq == (7, "ACK")
    assert "z9hG4bKnew" in (ack.header("via") or "") and "tag=pbx9" in (ack.header("to") or "")
    bye = parse_message(bye_for(INVITE, RINGING, "z9hG4bKbye").encode())
    assert bye.cseq == (8, "BYE") and "tag=pbx9" in (bye.header("to") or "")


def test_digest_matches_the_rfc_2617_example() -> None:
    # RFC 2617 3.5 (qop=auth): the published response for Mufasa / "Circle Of Life"
    ch = Challenge(
        "www-authenticate",
        "testrealm@host.com",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "auth",
        "5ccc069c403ebaf9f0171e9517f40e41",
        "MD5",
    )
    name, value = digest_authorization(
        ch, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", "0a4f113b"
    )
    assert name == "Authorization"
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value


def test_challenge_parsing_tolerates_junk() -> None:
    msg = parse_message(
        b"SIP/2.0 407 Proxy Authentication Required\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
        b'Proxy-Authenticate: Digest realm="a,b", nonce=abc, qop="auth-int,auth", junk\r\n\r\n'
    )
    ch = parse_challenge(msg)
    assert ch is not None and (ch.header, ch.realm, ch.nonce, ch.qop) == (
        "proxy-authenticate",
        "a,b",
        "abc",
        "auth",
    )
    assert (
        parse_challenge(parse_message(b"SIP/2.0 401 No\r\nWWW-Authenticate: Basic\r\n\r\n")) is None
    )


class Clock:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(round(s, 6))
        self.t += s


def test_ledger_enforces_rate_total_and_time() -> None:
    clock = Clock()
    ledger = Ledger(Budget(packets=3, rate=10, seconds=60), clock.now, clock.sleep)
    for _ in range(3):
        ledger.admit("sip/udp", "h:1", b"OPTIONS")
    assert clock.slept == [0.1, 0.1]  # 10 per second: the 2nd and 3rd waited
    with pytest.raises(BudgetSpent, match="packet budget of 3 spent"):
        ledger.admit("sip/udp", "h:1", b"x")
    assert [s.seq for s in ledger.sent] == [1, 2, 3]
    timed = Ledger(Budget(packets=10, rate=1000, seconds=5), clock.now, clock.sleep)
    timed.admit("iax2/udp", "h:4569", b"\x80\x01\xff")
    assert timed.sent[0].data == "hex:8001ff"  # binary stays exact
    clock.t += 5
    with pytest.raises(BudgetSpent, match="time budget of 5s spent"):
        timed.admit("sip/udp", "h:1", b"x")
    for bad in ({"packets": 0}, {"packets": 5001}, {"rate": 0}, {"seconds": 7200}):
        with pytest.raises(ValueError):
            Budget(**bad)  # type: ignore[arg-type]


def test_targets_only_local_or_declared() -> None:
    nets = parse_networks(["198.51.100.0/24", "2001:db8::7"], "probe.targets")
    never_local = lambda a: False  # noqa: E731
    assert refusal("127.0.0.1", [], False, never_local) is None
    assert refusal("::1", [], False, never_local) is None
    assert refusal("198.51.100.77", nets, False, never_local) is None
    assert refusal("2001:db8::7", nets, False, never_local) is None
    assert refusal("203.0.113.5", [], True, never_local) is None  # --i-own-this
    assert refusal("203.0.113.5", [], False, lambda a: True) is None  # this host's address
    reason = refusal("203.0.113.5", nets, False, never_local)
    assert reason is not None and reason.startswith("refusing to probe 203.0.113.5")
    assert "\n" not in reason
    with pytest.raises(ValueError, match=r"probe\.targets: 'pbx\.example' is not"):
        parse_networks(["pbx.example"], "probe.targets")
    assert split_target("[2001:db8::1]:5070", 5060) == ("2001:db8::1", 5070)
    assert split_target("2001:db8::1", 5060) == ("2001:db8::1", 5060)
    assert split_target("pbx:5061", 5060) == ("pbx", 5061)
    for bad in ("h:0", "h:70000", "[::1", "h:x", ":5060"):
        with pytest.raises(ValueError):
            split_target(bad, 5060)


def test_audit_ids_in_the_map_exist_in_audit() -> None:
    audit = Path(__file__).resolve().parents[2] / "src" / "sipguard" / "audit"
    text = "".join(p.read_text() for p in audit.glob("*.py"))
    literal = set(re.findall(r'"([A-Z]+(?:-[A-Z]+)+)"', text))
    # common.secret_findings builds f"{prefix}-{fid}" from add("EMPTY", ...) and the like
    built = {f"SEC-{m}" for m in re.findall(r'add\("([A-Z-]+)"', text)}
    for pid, ids in AUDIT_IDS.items():
        assert pid.startswith("PROBE-")
        for aid in ids:
            assert aid in literal | built, f"{pid} maps to unknown audit id {aid}"
    pairs = confirmed(
        ["PROBE-SIP-ENUM", "PROBE-AMI-OPEN", "PROBE-SIP-VERSION"],
        ["SIP-AUTHREJECT", "AMI-BIND", "RTP-RANGE"],
    )
    assert pairs == [("PROBE-SIP-ENUM", ("SIP-AUTHREJECT",)), ("PROBE-AMI-OPEN", ("AMI-BIND",))]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["203.0.113.5"], "refusing to probe 203.0.113.5: not this host and not declared"),
        (["127.0.0.1", "--guess", "1001", "--account", "100"], "--guess: must be 0..1000"),
        (["127.0.0.1", "--guess", "5"], "--guess: needs --account USER"),
        (["127.0.0.1", "--extensions", "1-x"], "--extensions: bad item '1-x'"),
        (["127.0.0.1", "--checks", "fingerprint,nope"], "--checks: unknown check 'nope'"),
        (["127.0.0.1:99999"], "TARGET: '127.0.0.1:99999': bad port '99999'"),
        (["127.0.0.1", "--max-packets", "9000"], "packet budget must be 1..5000"),
    ],
)
def test_cli_refusals_are_one_line(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", *argv]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.startswith(f"sipguard: error: {error}") and out.err.count("\n") == 1


def test_config_targets_and_their_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "sipguard.toml"
    cfg.write_text('[probe]\ntargets = ["192.0.2.0/24"]\nport = 1\n')
    assert main(["probe", "192.0.2.1", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err == f"sipguard: error: {cfg}: probe.port: unknown key\n"
    cfg.write_text('[probe]\ntargets = ["192.0.2.0/33"]\n')
    assert main(["probe", "192.0.2.1", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"sipguard: error: {cfg}: probe.targets: '192.0.2.0/33' is not an address or network\n"
    )
    cfg.write_text('[probe]\ntargets = "192.0.2.0/24"\n')
    assert main(["probe", "192.0.2.1", "--config", str(cfg)]) == 2
    assert "probe.targets: expected a list of strings" in capsys.readouterr().err


class FakeTransport:
    """Answers from a script: a list of (delay, bytes) per request sent."""

    name = "udp"
    local = ("192.0.2.9", 5555)

    def __init__(self, clock: Clock, script: list[list[tuple[float, bytes]]]) -> None:
        self.clock, self.script, self.sent, self.queue = clock, script, [], []

    def send(self, data: bytes) -> None:
        self.sent.append(data)
        msg = parse_message(data)
        for delay, raw in self.script.pop(0) if self.script else []:
            self.queue.append((self.clock.t + delay, raw.replace(b"CID", msg.call_id.encode())))

    def recv(self, timeout: float) -> bytes | None:
        if self.queue and self.queue[0][0] <= self.clock.t + timeout:
            at, raw = self.queue.pop(0)
            self.clock.t = max(self.clock.t, at)
            return raw
        self.clock.t += timeout
        return None

    def close(self) -> None:
        pass


def _resp(code: str, method: str = "INVITE") -> bytes:
    return (
        f"SIP/2.0 {code}\r\nCall-ID: CID\r\nCSeq: 1 {method}\r\nTo: <sip:x@h>;tag=r\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_only_100_trying_is_cancelled_after_the_grace_time() -> None:
    clock = Clock()
    t = FakeTransport(
        clock,
        [
            [(0.01, _resp("100 Trying"))],
            [(0.01, _resp("200 OK", "CANCEL")), (0.02, _resp("487 Terminated"))],
            [],
        ],
    )
    client = SipClient(t, Target("192.0.2.1", 5060), clock.now, timeout=2.0)
    start = clock.t
    answer = client.invite(client.build("INVITE", "0044", body=client.offer()))
    assert [m.split(b" ", 1)[0] for m in t.sent] == [b"INVITE", b"CANCEL", b"ACK"]
    assert answer.cancelled and not answer.answered and answer.statuses == [100, 487]
    assert 3.0 <= clock.t - start < 6.0  # waited the 3 s grace, then cancelled
