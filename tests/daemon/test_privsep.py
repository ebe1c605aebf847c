"""Privilege separation: the enforcer's server over a real socketpair (every kind of hostile
request refused, counted, and the next good one still served), the client the parser's Enforcer
drives, and the real `sipguard run --dry-run` pair: the parsing process holds no capability,
can run as another user, and each process goes when the other dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from sipguard.actions import DryRunFirewall
from sipguard.core import Action, Decision
from sipguard.daemon import channel
from sipguard.daemon.caps import read_caps
from sipguard.daemon.harness import SRC, DaemonProc, append, pjsip_failure, wait_for
from sipguard.daemon.privsep import EnforcerServer, FirewallClient
from sipguard.policy.guard import MAX_TIMEOUT, BanGuard

OWN = ip_network("198.51.100.10/32")


class Pair:
    """An EnforcerServer on a thread, with a raw socket to it."""

    def __init__(self) -> None:
        self.fw = DryRunFirewall(clock=time.time)
        guard = BanGuard(configured=(ip_network("192.0.2.0/24"),))
        self.server = EnforcerServer(self.fw, guard, own=lambda: [OWN])
        self.sock, theirs = socket.socketpair()
        self.thread = threading.Thread(target=self.server.serve, args=(theirs,), daemon=True)
        self.thread.start()
        self._theirs = theirs

    def raw(self, payload: bytes) -> dict[str, Any]:
        self.sock.sendall(channel.HEADER.pack(len(payload)) + payload)
        return self._reply()

    def _reply(self) -> dict[str, Any]:
        data = channel.receive(self.sock, channel.MAX_REPLY)
        assert data is not None
        reply: dict[str, Any] = json.loads(data)
        return reply

    def call(self, obj: Any) -> dict[str, Any]:
        return self.raw(json.dumps(obj).encode())

    def good_ban(self, ip: str) -> None:
        r = self.call({"op": "ban", "bans": [{"network": ip, "family": 4, "timeout": 60}]})
        assert r == {"ok": True, "applied": [ip], "refused": []}
        assert ip_network(ip) in self.fw.list()

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)
        self._theirs.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    p = Pair()
    yield p
    p.close()


def ban_req(net: str, timeout: Any = 60, family: int = 4) -> dict[str, Any]:
    return {"op": "ban", "bans": [{"network": net, "family": family, "timeout": timeout}]}


def test_hostile_requests_are_refused_counted_and_serving_goes_on(pair):
    hostile: list[tuple[bytes | dict[str, Any], str]] = [
        (b"{not json", "malformed"),
        (b"\xff\xfe\x00garbage", "malformed"),
        (
            b'{"op": "ban", "bans": [{"network": "203.0.113.1/32", "family": 4, "timeout": NaN}]}',
            "malformed",
        ),
        (b"[" * 100_000, "malformed"),  # deep nesting: refused, not a crash
        ({"op": "flush-ruleset"}, "unknown-op"),
        (ban_req("0.0.0.0/0"), "bad-network"),
        (ban_req("::/0", family=6), "bad-network"),
        (ban_req("203.0.113.1/32", timeout=10**12), "bad-timeout"),
        (ban_req("203.0.113.1/32", timeout=-1), "bad-timeout"),
        (ban_req("203.0.113.1/32", timeout=0), "bad-timeout"),
    ]
    for n, (payload, counter) in enumerate(hostile):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        reply = pair.raw(data)
        assert reply["ok"] is False and reply["counter"] == counter, (payload, reply)
        assert reply["error"]
        pair.good_ban(f"203.0.113.{n + 10}/32")
    # oversized: the frame is skipped whole, the stream stays in step
    big = b" " * (channel.MAX_REQUEST + 1)
    reply = pair.raw(big)
    assert reply["ok"] is False and reply["counter"] == "oversized"
    pair.good_ban("203.0.113.99/32")
    # well-formed bans of protected networks: refused entry by entry, the rest applied
    r = pair.call(
        {
            "op": "ban",
            "bans": [
                {"network": "192.0.2.9/32", "family": 4, "timeout": 60},  # allow-listed
                {"network": "127.0.0.1/32", "family": 4, "timeout": 60},  # loopback
                {"network": "::1/128", "family": 6, "timeout": 60},
                {"network": str(OWN), "family": 4, "timeout": 60},  # this host
                {"network": "169.254.1.1/32", "family": 4, "timeout": 60},
                {"network": "203.0.113.200/32", "family": 4, "timeout": None},
            ],
        }
    )
    assert r["ok"] and r["applied"] == ["203.0.113.200/32"]
    assert [x["reason"] for x in r["refused"]] == [
        "allow-listed",
        "loopback",
        "loopback",
        "own-address",
        "link-local",
    ]
    held = pair.fw.list()
    assert ip_network("192.0.2.9/32") not in held and OWN not in held
    assert held[ip_network("203.0.113.200/32")] is None  # permanent stays permanent
    # a runtime allow entry protects from then on
    added = pair.call({"op": "allow", "networks": ["203.0.113.128/25"]})
    assert added == {"ok": True, "added": 1, "removed": 0}
    r = pair.call(ban_req("203.0.113.201/32"))
    assert r["applied"] == [] and r["refused"][0]["reason"] == "allow-listed"
    counts = pair.call({"op": "status"})["status"]["counts"]
    assert counts["malformed"] == 4 and counts["unknown-op"] == 1
    assert counts["bad-network"] == 2 and counts["bad-timeout"] == 3
    assert counts["oversized"] == 1
    assert counts["refused-allow-listed"] == 2 and counts["refused-loopback"] == 2
    assert counts["refused-own-address"] == 1 and counts["refused-link-local"] == 1
    # 11 good bans, the mixed one, allow, the last ban; refused: 10 + oversized; this status
    assert counts["ok"] == len(hostile) + 4 and counts["requests"] == counts["ok"] + 12


def decision(net: str, seconds: float | None, now: float) -> Decision:
    exp = None if seconds is None else now + seconds
    return Decision(ip_network(net), Action.BAN, "r", "why", now, exp)


def test_client_speaks_the_firewall_interface(pair):
    pair.sock.close()
    ours, theirs = socket.socketpair()
    t = threading.Thread(target=pair.server.serve, args=(theirs,), daemon=True)
    t.start()
    lost: list[bool] = []
    client = FirewallClient(ours, on_lost=lambda: lost.append(True))
    now = time.time()
    client.init()
    batch = [
        decision("203.0.113.5/32", 600, now),
        decision("127.0.0.1/32", 60, now),  # refused by the enforcer
        decision("10.0.0.0/7", 60, now),  # malformed for it: not even sent
        decision("100.64.0.0/24", 10**12, now),  # sent as the longest timeout it takes
    ]
    sent = client.add(batch, now)
    assert sent == [ip_network("203.0.113.5/32"), ip_network("100.64.0.0/24")]
    assert client.last_refused == [{"network": "127.0.0.1/32", "reason": "loopback"}]
    held = client.list()
    assert 590 < (held[ip_network("203.0.113.5/32")] or 0) <= 600
    assert (held[ip_network("100.64.0.0/24")] or 0) > MAX_TIMEOUT - 10
    r = client.reconcile([decision("2001:db8::/64", None, now)], now)
    assert r.added == (ip_network("2001:db8::/64"),)
    assert r.removed == (ip_network("100.64.0.0/24"), ip_network("203.0.113.5/32"))
    client.remove([ip_network("2001:db8::/64")])
    assert client.list() == {}
    client.allow([ip_network("203.0.113.0/24")])
    assert client.add([decision("203.0.113.5/32", 600, now)], now) == []
    assert client.status()["counts"]["refused-allow-listed"] == 1
    # the enforcer goes away: the client says so and asks its process to stop
    theirs.close()
    t.join(5)
    with pytest.raises(Exception, match="enforcer process lost"):
        client.add([decision("203.0.113.6/32", 600, now)], now)
    assert lost == [True]
    client.close()


# ---- the real process pair ------------------------------------------------------------------


def shared_dir() -> Path:
    """A directory another user can reach (pytest's tmp_path lives under a 0700 root dir)."""
    d = Path(tempfile.mkdtemp(prefix="sg-privsep-"))
    d.chmod(0o755)
    return d


def config(tmp: Path, extra: str = "") -> Path:
    (tmp / "log").mkdir(mode=0o755)
    (tmp / "log" / "messages").touch()
    (tmp / "log" / "messages").chmod(0o644)
    cfg = tmp / "sipguard.toml"
    cfg.write_text(
        f"""
[daemon]
state_dir = "{tmp}/state"
control_socket = "{tmp}/run/ctl.sock"
tick_interval = 0.2
{extra}
[sources.logs]
paths = ["{tmp}/log/messages"]
poll_interval = 0.2
"""
    )
    cfg.chmod(0o644)
    return cfg


def status_of(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def alive(pid: int) -> bool:
    try:
        return status_of(pid)["State"][0] != "Z"
    except OSError:
        return False


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop capabilities")


def python_for_nobody() -> str | None:
    """An interpreter user nobody can run sipguard with: this one may live under /root (0700),
    then the system's (same minor version) if it has what sipguard imports."""
    probe = "import sys, sqlite3, sipguard.daemon.app; assert sys.version_info[:2] == (3, 11)"
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            run = subprocess.run(
                [python, "-c", probe], user=65534, env={"PYTHONPATH": SRC}, capture_output=True
            )
        except OSError:  # not even executable by it
            continue
        if run.returncode == 0:
            return python
    return None


@needs_root
@pytest.mark.parametrize("as_user", [False, True], ids=["root", "nobody"])
def test_parsing_process_has_no_capabilities_and_runs_as_the_user(tmp_path, as_user):
    python = python_for_nobody() if as_user else sys.executable
    if python is None:
        pytest.skip("no Python 3.11 here whose library user nobody may read")
    tmp = shared_dir()
    try:
        cfg = config(tmp, 'user = "nobody"\ngroup = "nogroup"' if as_user else "")
        d = DaemonProc(cfg, tmp / "run" / "ctl.sock", ["--dry-run"])
        d.argv[0] = python
        d.start()
        try:
            st = d.request("status")
            parser, enforcer = st["pid"], st["enforcer"]["pid"]
            assert d.proc is not None and enforcer == d.proc.pid != parser
            p = status_of(parser)
            for key in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"):
                assert p[key] == "0000000000000000", (key, p[key])
            assert p["NoNewPrivs"] == "1"
            uid = "65534" if as_user else "0"
            assert p["Uid"].split() == [uid] * 4 and p["Gid"].split() == [uid] * 4
            e = read_caps(enforcer)
            assert e["CapEff"] == e["CapPrm"] == e["CapBnd"] == 1 << 12  # CAP_NET_ADMIN only
            assert status_of(enforcer)["Uid"].split()[0] == "0"
            # the directories it writes were made for it; the log burst still ends in a ban
            assert (tmp / "state").stat().st_uid == int(uid)
            assert stat.S_IMODE((tmp / "state").stat().st_mode) == 0o750
            append(
                tmp / "log" / "messages", "".join(pjsip_failure("203.0.113.7", i) for i in range(5))
            )
            wait_for(lambda: d.banned() == {"203.0.113.7/32"})
            fw = d.request("status")["enforcer"]["counts"]
            assert fw["ok"] >= 3 and "malformed" not in fw
            cli = subprocess.run(
                [sys.executable, "-m", "sipguard", "status", "--socket", str(d.socket)],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "PYTHONPATH": SRC},
            )
            assert f"enforcer: pid {enforcer} (dry-run); ok " in cli.stdout, cli.stderr
        finally:
            assert d.stop() == 0
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


@needs_root
@pytest.mark.parametrize("victim", ["parser", "enforcer"])
def test_each_process_goes_when_the_other_dies(tmp_path, victim):
    cfg = config(tmp_path)
    d = DaemonProc(cfg, tmp_path / "run" / "ctl.sock", ["--dry-run"]).start()
    st = d.request("status")
    parser, enforcer = st["pid"], st["enforcer"]["pid"]
    assert d.proc is not None
    os.kill(parser if victim == "parser" else enforcer, signal.SIGKILL)
    if victim == "parser":
        assert d.proc.wait(10) == 1  # a failure: systemd restarts the pair
    else:
        d.proc.wait(10)
        wait_for(lambda: not alive(parser), 5)
    d.proc = None


def test_no_privsep_runs_one_process(tmp_path):
    cfg = config(tmp_path)
    d = DaemonProc(cfg, tmp_path / "run" / "ctl.sock", ["--dry-run", "--no-privsep"]).start()
    try:
        st = d.request("status")
        assert d.proc is not None and st["pid"] == d.proc.pid and st["enforcer"] is None
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("command", ["run", "config"])
def test_unknown_user_is_a_one_line_config_error(tmp_path, command):
    cfg = config(tmp_path, 'user = "no-such-sipguard-user"')
    argv = ["run", "--dry-run"] if command == "run" else ["config", "check"]
    out = subprocess.run(
        [sys.executable, "-m", "sipguard", *argv, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("sipguard: error: ")  # run says "cannot start: " first
    assert last.endswith(f"{cfg}: daemon.user: no such user 'no-such-sipguard-user'")
    assert not (tmp_path / "state").exists()  # stopped before anything was made
