"""Sensor policy, state and config: each check in order, with its counter and event."""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.config.errors import ConfigError
from sipguard.core.events import Kind, Service
from sipguard.data import scanner_signatures
from sipguard.sensor.config import parse_sensor_config
from sipguard.sensor.policy import SensorPolicy
from sipguard.sensor.state import DialogTable, TokenBuckets

DOMAIN = "secret.example.com"
PHONE = ip_address("192.0.2.10")
TRUNK = ip_address("198.51.100.7")


def sip(
    method: str = "REGISTER",
    host: str = DOMAIN,
    to_host: str | None = None,
    ua: str = "Yealink SIP-T46S",
    call_id: str = "c1",
    from_tag: str = "f1",
    to_tag: str | None = None,
    status: str | None = None,
) -> bytes:
    start = f"SIP/2.0 {status}" if status else f"{method} sip:100@{host} SIP/2.0"
    to = f"<sip:100@{to_host or host}>" + (f";tag={to_tag}" if to_tag else "")
    return (
        f"{start}\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        f'From: "Desk" <sip:100@{host}>;tag={from_tag}\r\nTo: {to}\r\n'
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nUser-Agent: {ua}\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def policy(**table: object) -> SensorPolicy:
    table.setdefault("domains", [DOMAIN])
    table.setdefault("trusted", ["198.51.100.0/28"])
    return SensorPolicy(parse_sensor_config(table, "test.toml", scanner_signatures()))


def test_secret_domain_accepts_and_bare_ip_is_dropped_with_an_event() -> None:
    p = policy()
    assert p.check_sip(sip(), PHONE, 5060, 1.0).accept
    fqdn = sip(host="SECRET.Example.com.", call_id="c0")  # case and the root dot do not matter
    assert p.check_sip(fqdn, PHONE, 5060, 1.0).accept
    v = p.check_sip(sip(host="203.0.113.1", call_id="c2"), PHONE, 5062, 2.0)
    assert not v.accept and v.reason == "wrong_domain"
    assert v.event is not None
    e = v.event
    assert (e.kind, e.service, e.ip, e.port, e.transport) == (
        Kind.SENSOR_DROP, Service.SENSOR, PHONE, 5062, "udp",
    )  # fmt: skip
    assert e.detail == "wrong_domain 203.0.113.1" and e.target == "sip:100@203.0.113.1"
    assert e.is_attack
    # the To host must match as well, not only the Request-URI
    assert not p.check_sip(sip(to_host="203.0.113.1", call_id="c3"), PHONE, 5060, 3).accept
    assert p.counters["wrong_domain"] == 2 and p.counters["accepted"] == 2


def test_scanner_user_agents_and_display_names() -> None:
    p = policy()
    v = p.check_sip(sip(ua="friendly-scanner"), PHONE, 5060, 1)
    assert v.event is not None and v.event.kind == Kind.SCANNER_PROBE
    assert v.event.user_agent == "friendly-scanner"
    assert v.event.detail == "scanner_user_agent friendly-scanner"
    spoofed = sip(ua="Yealink").replace(b'"Desk"', b'"sipvicious"')
    assert p.check_sip(spoofed, PHONE, 5060, 1).reason == "scanner"
    off = policy(block_scanners=False)
    assert off.check_sip(sip(ua="friendly-scanner"), PHONE, 5060, 1).accept


def test_malformed_is_dropped_with_its_reason() -> None:
    p = policy()
    v = p.check_sip(b"\x16\x03\x01 not sip at all\r\n\r\n", PHONE, 5060, 1)
    assert not v.accept and v.event is not None
    assert v.event.kind == Kind.MALFORMED_REQUEST and v.event.detail == "bad_request_line"
    no_call_id = sip().replace(b"Call-ID: c1\r\n", b"")
    assert p.check_sip(no_call_id, PHONE, 5060, 1).event.detail == "missing_call_id"  # type: ignore[union-attr]
    assert p.counters["malformed"] == 2


def test_token_bucket_per_source_and_method() -> None:
    p = policy(rate_limits={"REGISTER": {"rate": 1, "burst": 3}})
    verdicts = [p.check_sip(sip(call_id=f"r{i}"), PHONE, 5060, 100.0).accept for i in range(5)]
    assert verdicts == [True, True, True, False, False]
    # another source has its own bucket; INVITE has no limit configured now
    assert p.check_sip(sip(call_id="o1"), ip_address("192.0.2.11"), 5060, 100.0).accept
    assert p.check_sip(sip("INVITE", call_id="i1"), PHONE, 5060, 100.0).accept
    # one second later one token is back
    assert p.check_sip(sip(call_id="r9"), PHONE, 5060, 101.0).accept
    assert not p.check_sip(sip(call_id="r10"), PHONE, 5060, 101.0).accept
    limited = p.check_sip(sip(call_id="r11"), PHONE, 5060, 101.0)
    assert limited.event is not None and limited.event.detail == "rate_limit REGISTER"


def test_trusted_trunk_passes_untouched() -> None:
    p = policy()
    for data in (sip(host="203.0.113.1", ua="friendly-scanner"), b"garbage"):
        assert p.check_sip(data, TRUNK, 5060, 1).reason == "trusted"
    assert p.counters["trusted"] == 2 and p.counters["dropped"] == 0


def test_dialogs_let_in_dialog_requests_and_responses_pass() -> None:
    p = policy()
    assert p.check_sip(sip("INVITE", call_id="call"), PHONE, 5060, 1).accept
    # ACK and BYE go to the contact address, not the domain: they pass on Call-ID + tag
    ack = sip("ACK", host="203.0.113.1", call_id="call", to_tag="pbx")
    assert p.check_sip(ack, PHONE, 5060, 2).reason == "in_dialog"
    # a guessed Call-ID with a wrong tag does not
    forged = sip("BYE", host="203.0.113.1", call_id="call", from_tag="x", to_tag="y")
    assert p.check_sip(forged, PHONE, 5060, 2).reason == "wrong_domain"
    # responses: only to dialogs we know (the PBX's own requests are noted on the way out)
    ok = sip(status="200 OK", call_id="qualify-1")
    assert p.check_sip(ok, PHONE, 5060, 3).reason == "unsolicited_response"
    p.note_outbound(sip("OPTIONS", host="192.0.2.10", call_id="qualify-1"), 3)
    assert p.check_sip(ok, PHONE, 5060, 3).reason == "response"
    # dialogs expire
    late = p.config.dialog_ttl + 10
    assert p.check_sip(ack, PHONE, 5060, late).reason == "wrong_domain"


def test_tls_sni() -> None:
    import ssl

    def hello(name: str | None) -> bytes:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        out = ssl.MemoryBIO()
        tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname=name)
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        return out.read()

    p = policy()
    assert p.check_tls(hello(DOMAIN), PHONE, 40000, 1) is not None
    assert p.check_tls(hello(DOMAIN)[:50], PHONE, 40000, 1) is None  # wait for more
    wrong = p.check_tls(hello("pbx.example.org"), PHONE, 40001, 1)
    assert wrong is not None and not wrong.accept and wrong.event is not None
    assert wrong.event.detail == "tls_sni pbx.example.org" and wrong.event.transport == "tls"
    absent = p.check_tls(hello(None), PHONE, 40002, 1)
    assert absent is not None and absent.reason == "wrong_sni"
    junk = p.check_tls(b"GET / HTTP/1.1\r\n", PHONE, 40003, 1)
    assert junk is not None and junk.reason == "malformed_tls"


def test_state_is_bounded() -> None:
    buckets = TokenBuckets({"REGISTER": (1.0, 2.0)}, max_keys=100)
    for i in range(1000):
        buckets.take(i, "REGISTER", 0.0)
    assert len(buckets) == 100 and buckets.evicted == 900
    assert buckets.expire(10.0) == 100  # refilled buckets hold nothing worth keeping
    dialogs = DialogTable(max_dialogs=50, ttl=10)
    for i in range(500):
        dialogs.add(f"c{i}", ("t",), 0.0)
    assert len(dialogs) == 50 and "c499" in dialogs and "c0" not in dialogs
    assert dialogs.expire(11.0) == 50


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"domains": ["bad domain"]}, "sensor.domains"),
        ({"domains": "x.com", "trusted": ["10.0.0.0/33"]}, "sensor.trusted"),
        ({"queue": 70000}, "sensor.queue"),
        ({"sip_ports": [0]}, "sensor.sip_ports"),
        ({"sip_ports": [5060], "tls_ports": [5060]}, "sensor.tls_ports"),
        ({"rate_limits": {"REGISTER": {"rate": -1}}}, "sensor.rate_limits.REGISTER.rate"),
        ({"rate_limits": {"REGISTER": {"per": 1}}}, "sensor.rate_limits.REGISTER"),
        ({"block_scanners": "yes"}, "sensor.block_scanners"),
        ({"enabled": 1}, "sensor.enabled"),
        ({"domian": ["x.com"]}, "sensor.domian"),
    ],
)
def test_config_errors_name_file_and_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sensor_config(table, "/etc/sipguard/sipguard.toml")
    assert err.value.file == "/etc/sipguard/sipguard.toml" and err.value.key == key
    assert str(err.value).startswith(f"/etc/sipguard/sipguard.toml: {key}: ")


def test_config_defaults_and_normalisation() -> None:
    cfg = parse_sensor_config({"domains": ["Secret.Example.COM."], "trusted": ["2001:db8::/64"]})
    assert cfg.domains == frozenset({DOMAIN})
    assert cfg.sip_ports == (5060,) and cfg.tls_ports == (5061,) and cfg.queue == 0
    assert set(cfg.rates) == {"REGISTER", "INVITE", "OPTIONS"}
    assert str(cfg.trusted[0]) == "2001:db8::/64"
    assert cfg.enabled and "friendly-scanner" in cfg.signatures  # the shipped list by default


JUNK = [b";tag=", b"<", b">", b"@", b"\r\n", b":", b"\xc3", b" ", b"sip:"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_policy_never_raises_on_mutated_requests(data: st.DataObject) -> None:
    p = policy()
    msg = bytearray(sip(data.draw(st.sampled_from(["REGISTER", "INVITE", "ACK", "BYE"]))))
    for _ in range(data.draw(st.integers(1, 5))):
        pos = data.draw(st.integers(0, len(msg)))
        msg[pos:pos] = data.draw(st.sampled_from(JUNK))
    v = p.check_sip(bytes(msg), PHONE, 5060, 1.0)
    assert v.accept == (v.event is None)
    assert p.counters["seen"] == 1


def test_render_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sipguard.cli.main import main

    argv = ["firewall", "render", "--domain", DOMAIN, "--asterisk-dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "table inet sipguard_base {" in out and f'"@{DOMAIN}"' in out
