"""What the fraud tests against a real Asterisk share: the office's fraud settings, phone 1001
(sipp with digest authentication), sipp runs, and a PBX with a carrier trunk and the daemon.

`OutboundLab` is a PBX in a namespace whose phones dial out through `carrier` (sipp as UAS in
its own namespace, given its scenario), with the dialplan snippet of docs/fraud.md that refuses
locked accounts, an AMI user allowed the fraud actions, and `sipguard run` with fraud on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sipguard.daemon.harness import DaemonProc, wait_for
from sipguard.testing.asterisk import Pbx, PbxConfig
from sipguard.testing.netns import Host, NetLab

HERE = Path(__file__).resolve().parent
FRAUD = 'home_country = "DE"\nnational_prefix = "0"\ninternational_prefixes = ["00"]\n'
FRAUD += 'timezone = "UTC"\n'
PHONE = HERE / "sipp" / "uac_auth.xml"  # a phone's call with digest authentication
PASSWORD = "pj-1001-Xq8#rT2vLm"


def sipp_calls(lab: NetLab, host: Host, target: str, dst: str, calls: int, *scenario: str) -> None:
    """`calls` calls from sipp's own uac scenario (INVITE, ACK on 200, BYE after 300 ms), or
    from `scenario` (sipp's arguments)."""
    argv = ["sipp", *(scenario or ("-sn", "uac")), "-s", dst, "-i", host.ip, "-p", "5062",
            "-m", str(calls), "-r", "4", "-d", "300", "-nostdin", "-timeout", "60",
            f"{target}:5060"]  # fmt: skip
    res = lab.run(host, argv, check=False, timeout=90)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def phone_call(
    lab: NetLab, phone: Host, dst: str, hold_ms: int = 300, calls: int = 1, port: int = 5060
) -> float:
    """`calls` calls of phone 1001 to `dst` at once, each held `hold_ms` after the answer
    unless the PBX ends it first (then sipp fails it: not checked); `port` 5060 reaches PJSIP,
    5070 chan_sip. Returns the wall-clock seconds until the last ended."""
    auth = ("-sf", str(PHONE), "-key", "phone", "1001", "-au", "1001", "-ap", PASSWORD)
    argv = ["sipp", *auth, "-s", dst, "-i", phone.ip, "-p", "5062", "-m", str(calls),
            "-l", str(calls), "-r", "10", "-d", str(hold_ms), "-nostdin", "-timeout", "60",
            f"{phone.hub_ip}:{port}"]  # fmt: skip
    t0 = datetime.now().timestamp()
    lab.run(phone, argv, check=False, timeout=90)
    return datetime.now().timestamp() - t0


def locking_dialplan(chan_sip: bool = False) -> str:
    """docs/fraud.md's dialplan snippet, as documented, in the phones' context and through
    this lab's carrier: what the docs tell an administrator to paste must really work. For
    chan_sip phones with the change its comment names (the peer name is the account)."""
    docs = (HERE.parents[1] / "docs" / "fraud.md").read_text()
    snippet = docs.split("```\n[outbound]\n", 1)[1].split("```", 1)[0]
    assert "DB_EXISTS(sipguard/locked/" in snippet and "@trunk," in snippet
    snippet = snippet.replace("@trunk,", "@carrier,")
    if chan_sip:
        assert "; chan_sip: ${CHANNEL(peername)}" in snippet
        snippet = snippet.replace(
            "Set(ACCT=${CHANNEL(endpoint)})", "Set(ACCT=${CHANNEL(peername)})"
        )
    return "[phones](+)\n" + snippet


def trace_messages(trace: str, way: str = "received") -> list[tuple[float, str]]:
    """(when, message) of each message sipp's -trace_msg logged `way` ("received", "sent")."""
    out = []
    for m in re.finditer(r"^-{20,} (\S+ \S+)\n(.*?)(?=^-{20,} |\Z)", trace, re.M | re.S):
        head, _, body = m.group(2).partition("\n\n")
        if way in head:
            when = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out.append((when, body.strip()))
    return out


def trace_times(trace: str, start: str, way: str = "received") -> list[float]:
    """When each message `way` that starts with `start` was logged, in order."""
    return [when for when, body in trace_messages(trace, way) if body.startswith(start)]


def trace_time(trace: str, start: str, way: str = "received") -> float:
    """The first of `trace_times`."""
    times = trace_times(trace, start, way)
    assert times, f"no {start!r} {way}"
    return times[0]


@dataclass
class OutboundLab:
    lab: NetLab
    pbx: Pbx
    phone: Host
    daemon: DaemonProc
    trunk_log: Path

    def fraud(self) -> dict[str, Any]:
        st: dict[str, Any] = self.daemon.request("status")["fraud"]
        return st

    def trace(self) -> str:
        return self.trunk_log.read_text(errors="replace")


@contextmanager
def outbound_lab(
    name: str,
    prefix: Path,
    tmp: Path,
    carrier_scenario: list[str],
    fraud: str = "",
    rates: str = "",
    chan_sip: bool = False,
) -> Iterator[OutboundLab]:
    """The PBX, the carrier (sipp with `carrier_scenario`, tracing its messages), phone 1001's
    namespace, and the daemon (fraud on, `fraud` appended to its [fraud] table, `rates` its
    rate table's CSV), AMI up. Phone 1001 is a PJSIP endpoint, or with `chan_sip` a sip.conf
    peer (port 5070)."""
    with NetLab(name) as lab:
        pbx_host = lab.add_host("pbx")
        phone = lab.add_host("phone", hub=pbx_host)
        carrier = lab.add_host("carrier", hub=pbx_host)
        extra = {
            "pjsip.conf": (
                "[carrier]\ntype = endpoint\ncontext = from-pstn\ndisallow = all\nallow = ulaw\n"
                # no direct-media re-INVITE once answered: sipp's UAS would not answer it
                "direct_media = no\n"
                f"aors = carrier\n[carrier]\ntype = aor\ncontact = sip:{carrier.ip}:5060\n"
                f"[carrier]\ntype = identify\nendpoint = carrier\nmatch = {carrier.ip}\n"
            ),
            "extensions.conf": locking_dialplan(chan_sip),
            # the fraud actions: Hangup needs the call class, DBPut the system class
            "manager.conf": "[sipguard](+)\nwrite = call,system\n",
        }
        phones = {"1001": PASSWORD}
        config = PbxConfig(endpoints={} if chan_sip else phones, peers=phones if chan_sip else {})
        config.extra = extra
        pbx = Pbx(lab, pbx_host, tmp / "pbx", prefix, config).start()
        trunk_log = tmp / "trunk.log"
        argv = ["sipp", *carrier_scenario, "-i", carrier.ip, "-p", "5060", "-nostdin",
                "-trace_msg", "-message_file", str(trunk_log)]  # fmt: skip
        trunk = lab.popen(carrier, argv)
        cfg = tmp / "sipguard.toml"
        table = ""
        if rates:
            (tmp / "rates.csv").write_text(rates)
            table = f'rates = "{tmp}/rates.csv"\n'
        settings = f"[daemon.fraud]\nenabled = true\n{table}[fraud]\n{FRAUD}{fraud}"
        cfg.write_text(pbx.sipguard_config(tmp, settings))
        daemon = DaemonProc(cfg, tmp / "ctl.sock", ["--dry-run"], prefix=lab.cmd(pbx_host, []))
        try:
            daemon.start()
            wait_for(lambda: daemon.request("status")["sources"]["ami"].get("connected"), 15)
            yield OutboundLab(lab, pbx, phone, daemon, trunk_log)
        finally:
            daemon.stop()
            trunk.kill()
            pbx.stop()
