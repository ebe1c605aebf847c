"""End to end: real scanners and clients in an `attacker` namespace, the sensor (NFQUEUE) and a
counting SIP responder in a `pbx` namespace. Every count is taken at the responder, i.e. what
would have reached Asterisk."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import pytest
from sensorlab import DOMAIN, HERE, Lab

pytestmark = [pytest.mark.netns, pytest.mark.slow]


def _sipvicious(lab: Lab, tool: str, *args: str) -> str:
    env = {**os.environ, "HOME": str(lab.tmp)}  # sipvicious keeps its session files in ~
    argv = [f"sipvicious_{tool}", *args]
    proc = lab.lab.run(lab.atk, argv, check=False, timeout=60, env=env)
    return proc.stdout + proc.stderr


def test_sipvicious_finds_nothing_behind_the_secret_domain(lab: Lab) -> None:
    # control: without the sensor, svmap does find the responder
    before = _sipvicious(lab, "svmap", "-t", "0.05", lab.pbx_ip)
    assert "test-pbx" in before or lab.pbx_ip in before, before
    assert lab.received(lab.atk), "svmap's probe should have reached the responder"
    lab.log.write_text("")

    lab.start_sensor()
    after = _sipvicious(lab, "svmap", "-t", "0.05", lab.pbx_ip)
    _sipvicious(lab, "svwar", "-t", "0.05", "-e", "100-120", "-m", "REGISTER", lab.pbx_ip)
    _sipvicious(lab, "svwar", "-t", "0.05", "-e", "100-110", "-m", "INVITE", lab.pbx_ip)
    _sipvicious(lab, "svcrack", "-t", "0.05", "-u", "100", "-r", "1000-1030", lab.pbx_ip)

    assert lab.received(lab.atk) == []
    assert "test-pbx" not in after
    events = [e for e in lab.sent_events() if e["ip"] == lab.atk.ip]
    kinds = {e["kind"] for e in events}
    assert "scanner_probe" in kinds  # sipvicious says "friendly-scanner"
    assert all(e["service"] == "sensor" and e["port"] for e in events)


def test_phone_on_the_secret_domain_registers_and_calls(lab: Lab) -> None:
    lab.start_sensor()
    scenario = str(HERE / "scenarios" / "register_call.xml")
    argv = ["sipp", "-sf", scenario, "-key", "domain", DOMAIN, "-s", "1001",
            "-au", "1001", "-ap", "secret", "-m", "1",
            "-timeout", "15s", "-timeout_error", "-nostdin", "-trace_err",
            "-error_file", str(lab.tmp / "sipp.err"), f"{lab.pbx_ip}:5060"]  # fmt: skip
    proc = lab.lab.run(lab.atk, argv, check=False, timeout=30, cwd=str(lab.tmp))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    methods = [r["first"].split(" ")[0] for r in lab.received(lab.atk)]
    assert methods.count("REGISTER") == 2
    assert {"INVITE", "ACK", "BYE"} <= set(methods)

    # the same phone without the domain (the bare address, as a scanner knows it): silence
    bare = lab.client(lab.atk, 3, "REGISTER", lab.pbx_ip, "Yealink SIP-T46S")
    assert bare["answered"] == 0
    details = [e["detail"] for e in lab.sent_events() if e["kind"] == "sensor_drop"]
    assert any(str(d).startswith("wrong_domain") for d in details)


def test_scanner_user_agent_dropped_and_phone_passes(lab: Lab) -> None:
    lab.start_sensor()
    scanner = lab.client(lab.atk, 3, "OPTIONS", DOMAIN, "friendly-scanner")
    assert scanner["answered"] == 0
    phone = lab.client(lab.atk, 3, "OPTIONS", DOMAIN, "Yealink SIP-T46S")
    assert phone["answered"] == 3
    uas = [r["ua"] for r in lab.received(lab.atk)]
    assert uas == ["Yealink SIP-T46S"] * 3
    probes = [e for e in lab.sent_events() if e["kind"] == "scanner_probe"]
    assert len(probes) == 3 and probes[0]["user_agent"] == "friendly-scanner"


def test_flood_is_cut_to_the_rate(lab: Lab) -> None:
    lab.start_sensor("--rate", "OPTIONS=10/10")
    sent = lab.client(lab.atk, 300, "OPTIONS", DOMAIN, "Yealink SIP-T46S", seconds=2.0)
    got = len(lab.received(lab.atk))
    # burst 10 + 10/s over ~2.5 s (the run), with slack for scheduling on a busy machine
    assert 15 <= got <= 10 + 10 * 3.5, (sent, got)
    limited = [e for e in lab.sent_events() if str(e["detail"]).startswith("rate_limit")]
    assert len(limited) == 300 - got


def test_trunk_passes_untouched(lab: Lab) -> None:
    lab.start_sensor()
    # a trunk sends to the bare address, even with an odd user agent: it is on the allow-list
    trunk = lab.client(lab.trunk, 5, "INVITE", lab.trunk.hub_ip, "sipcli/trunk")
    assert trunk["answered"] == 5
    assert len(lab.received(lab.trunk)) == 5
    same = lab.client(lab.atk, 5, "INVITE", lab.pbx_ip, "sipcli/trunk")
    assert same["answered"] == 0


def test_fail_open_when_the_sensor_dies(lab: Lab) -> None:
    lab.start_sensor()
    assert lab.client(lab.atk, 2, "OPTIONS", lab.pbx_ip, "x")["answered"] == 0
    lab.stop_sensor(signal.SIGKILL)  # no clean-up: the queue rules stay, nobody listens
    rules = lab.lab.run(lab.pbx, ["nft", "list", "ruleset"]).stdout
    assert "queue" in rules
    assert lab.client(lab.atk, 4, "OPTIONS", lab.pbx_ip, "x")["answered"] == 4

    lab.start_sensor()
    assert lab.client(lab.atk, 2, "OPTIONS", lab.pbx_ip, "x")["answered"] == 0
    lab.stop_sensor(signal.SIGTERM)  # a clean stop removes the sensor's rules
    rules = lab.lab.run(lab.pbx, ["nft", "list", "ruleset"]).stdout
    assert "sipguard" not in rules and "queue" not in rules
    assert lab.client(lab.atk, 2, "OPTIONS", lab.pbx_ip, "x")["answered"] == 2


TLS_SERVER = """
import socket, ssl, sys, threading
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv = socket.create_server(("0.0.0.0", 5061))
print("ready", flush=True)

def serve(conn):
    conn.settimeout(10)
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1)
    except (OSError, ssl.SSLError):
        pass

while True:
    conn, addr = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

TLS_CLIENT = """
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
name = sys.argv[2] or None
try:
    with socket.create_connection((sys.argv[1], 5061), timeout=3) as s:
        with ctx.wrap_socket(s, server_hostname=name) as tls:
            print("ok", tls.version())
except (OSError, ssl.SSLError) as exc:
    print("failed", type(exc).__name__)
"""


def test_tls_with_a_wrong_sni_never_completes_a_handshake(lab: Lab) -> None:
    key, cert = lab.tmp / "key.pem", lab.tmp / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         f"/CN={DOMAIN}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    server = lab.lab.popen(
        lab.pbx, [sys.executable, "-c", TLS_SERVER, str(cert), str(key)], stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    ready, _, _ = select.select([server.stdout], [], [], 10)
    assert ready and server.stdout.readline().strip() == b"ready"
    lab.files.append(server.stdout)
    lab.start_sensor()

    def connect(name: str) -> str:
        argv = [sys.executable, "-c", TLS_CLIENT, lab.pbx_ip, name]
        return lab.lab.run(lab.atk, argv, timeout=20).stdout.strip()

    assert connect("wrong.example.org").startswith("failed")
    assert connect("").startswith("failed")  # no SNI at all
    assert connect(lab.pbx_ip).startswith("failed")  # the bare address as SNI
    assert connect(DOMAIN).startswith("ok")
    details = [str(e["detail"]) for e in lab.sent_events() if e["transport"] == "tls"]
    assert "tls_sni wrong.example.org" in details and "tls_sni absent" in details


TCP_CLIENT = """
import socket, sys, time, uuid
def msg(host):
    cid = uuid.uuid4().hex
    return (f"OPTIONS sip:100@{host} SIP/2.0\\r\\n"
            f"Via: SIP/2.0/TCP 192.0.2.9;branch=z9hG4bK{cid[:8]}\\r\\n"
            f"From: <sip:100@{host}>;tag=a\\r\\nTo: <sip:100@{host}>\\r\\nCall-ID: {cid}\\r\\n"
            f"CSeq: 1 OPTIONS\\r\\nUser-Agent: Phone\\r\\nContent-Length: 0\\r\\n\\r\\n").encode()
s = socket.create_connection((sys.argv[1], 5060), timeout=3)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
a = msg(sys.argv[2])
for part in (a[:30], a[30:100], a[100:]):  # one message in three segments
    s.sendall(part); time.sleep(0.15)
s.sendall(msg(sys.argv[2]) + msg(sys.argv[2]))  # two messages in one segment
time.sleep(0.3)
s.sendall(msg(sys.argv[3]))  # the bare address: the flow is cut here
time.sleep(0.3)
try:
    s.sendall(msg(sys.argv[2]))
except OSError:
    pass
time.sleep(1.0)
"""


def test_tcp_segments_are_reassembled_and_a_bad_message_cuts_the_flow(lab: Lab) -> None:
    lab.start_sensor()
    argv = [sys.executable, "-c", TCP_CLIENT, lab.pbx_ip, DOMAIN, lab.pbx_ip]
    lab.lab.run(lab.atk, argv, check=False, timeout=30)
    got = [r for r in lab.received(lab.atk) if r["transport"] == "tcp"]
    assert [r["first"] for r in got] == [f"OPTIONS sip:100@{DOMAIN} SIP/2.0"] * 3
    drops = [e for e in lab.sent_events() if e["transport"] == "tcp"]
    assert [e["detail"] for e in drops] == [f"wrong_domain {lab.pbx_ip}"]


def test_ipv6_sources_are_judged_the_same(lab: Lab) -> None:
    lab.start_sensor()
    v6 = lab.atk.hub_ip6
    assert lab.client(lab.atk, 3, "OPTIONS", DOMAIN, "Phone", target=v6)["answered"] == 3
    bare = lab.client(lab.atk, 3, "OPTIONS", f"[{v6}]", "Phone", target=v6)
    assert bare["answered"] == 0
    events = [e for e in lab.sent_events() if e["ip"] == lab.atk.ip6]
    assert len(events) == 3 and events[0]["detail"] == f"wrong_domain [{v6}]"


def test_two_workers_keep_per_source_state_exact(lab: Lab) -> None:
    # the kernel hashes the address pair: one source always meets the same worker, so its
    # token bucket is not split between processes
    lab.start_sensor("--workers", "2", "--rate", "OPTIONS=10/10")
    lab.client(lab.atk, 200, "OPTIONS", DOMAIN, "Yealink SIP-T46S", seconds=1.0)
    got = len(lab.received(lab.atk))
    assert 12 <= got <= 10 + 10 * 2.5, got
    assert lab.client(lab.trunk, 3, "INVITE", lab.trunk.hub_ip, "sipcli")["answered"] == 3
    assert lab.client(lab.atk, 2, "INVITE", DOMAIN, "friendly-scanner")["answered"] == 0
    lab.stop_sensor()
    rules = lab.lab.run(lab.pbx, ["nft", "list", "ruleset"]).stdout
    assert "queue" not in rules
