#!/usr/bin/env python3
"""A seeded, realistic Asterisk `messages` log (notice,warning,error,security,verbose) with truth.

Mostly ordinary noise (dialplan VERBOSE, bridges, RTP, qualify, pjproject lines with their blank
line, chan_sip retransmissions, AMI log-offs) plus attacks of every form sipguard knows: svmap /
svwar / svcrack style PJSIP and chan_sip lines with their SECURITY lines, chan_sip INVITE failures
without an address, rejected calls, IAX2, AMI, pjproject drops, chan_sip challenge floods, IPv6,
and injection lines whose From names an innocent address.

The truth file has one row per attack line: line number, true source IP, attempt id, kind, and
whether the line itself carries the address. Every attempt is charged to exactly one IP; the
injected address (192.0.2.66) never attacks.

    python3 bench/genlog.py --lines 1000000 --seed 1 --out bench/out
    python3 bench/genlog.py --sources 50000 --attack-share 0.15   # ~50k distinct attackers
"""

from __future__ import annotations

import argparse
import random
import time
import zlib
from calendar import timegm
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

INJECTED = "192.0.2.66"  # named inside From by injection lines; never a source
START = timegm((2026, 11, 22, 0, 0, 0, 0, 0, 0))


@dataclass
class Gen:
    rng: random.Random
    t: float = START
    lines: list[str] = field(default_factory=list)
    truth: list[str] = field(default_factory=list)
    attempt: int = 0
    line_no: int = 0
    call: int = 0
    attackers_v4: list[str] = field(default_factory=list)
    attackers_v6: list[str] = field(default_factory=list)

    # -- primitives -----------------------------------------------------------------------------
    def stamp(self) -> str:
        ms = int(self.t * 1000) % 1000
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.t)) + f".{ms:03d}"

    def tv(self) -> str:
        ms = int(self.t * 1000) % 1000
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.t)) + f".{ms:03d}+0000"

    def emit(
        self, text: str, ip: str | None = None, kind: str = "", addressed: bool = True
    ) -> None:
        self.line_no += 1
        self.lines.append(text)
        if ip is not None:
            self.truth.append(f"{self.line_no}\t{ip}\t{self.attempt}\t{kind}\t{int(addressed)}")

    def tick(self, mean: float) -> None:
        self.t += self.rng.expovariate(1.0 / mean)

    def tag(self) -> str:
        self.call += 1
        return f"C-{self.call:08x}"

    def security(
        self,
        name: str,
        service: str,
        account: str,
        session: str,
        remote: str,
        extra: str = "",
        severity: str = "Error",
        version: str = "1",
    ) -> str:
        return (
            f'[{self.stamp()}] SECURITY[18584] res_security_log.c: SecurityEvent="{name}",'
            f'EventTV="{self.tv()}",Severity="{severity}",Service="{service}",'
            f'EventVersion="{version}",AccountID="{account}",SessionID="{session}",'
            f'LocalAddress="IPV4/UDP/10.0.0.1/5060",RemoteAddress="{remote}"{extra}'
        )


def remote(ip: str, port: int, transport: str = "UDP") -> str:
    return f"IPV{6 if ':' in ip else 4}/{transport}/{ip}/{port}"


def hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


# -- noise ---------------------------------------------------------------------------------------
def noise(g: Gen) -> None:
    r = g.rng
    ext = r.randint(100, 299)
    ch = f"PJSIP/{ext}-{r.randint(0, 0xFFFFFFF):08x}"
    c = f"[C-{r.randint(0, 0xFFFF):08x}]"
    k = r.randrange(13) if r.random() < 0.98 else 13
    s = g.stamp()
    if k <= 3:
        g.emit(
            f"[{s}] VERBOSE[{r.randint(2000, 30000)}]{c} pbx.c: Executing [{ext}@from-internal:"
            f'{r.randint(1, 9)}] Dial("{ch}", "PJSIP/{ext + 1},30,tT") in new stack'
        )
    elif k == 4:
        g.emit(f"[{s}] VERBOSE[{r.randint(2000, 30000)}]{c} app_dial.c: {ch} is ringing")
    elif k == 5:
        g.emit(
            f"[{s}] VERBOSE[{r.randint(2000, 30000)}]{c} bridge_channel.c: Channel {ch} joined "
            f"'simple_bridge' basic-bridge <{r.randint(0, 2**64):x}-4e2b-9b1f>"
        )
    elif k == 6:
        g.emit(
            f"[{s}] VERBOSE[{r.randint(2000, 30000)}]{c} res_rtp_asterisk.c: "
            f"0x7f{r.randint(0, 2**32):08x}"
            f" -- Strict RTP learning after remote address set to: 10.0.0.{r.randint(2, 250)}:"
            f"{r.randint(10000, 20000)}"
        )
    elif k == 7:
        g.emit(
            f"[{s}] VERBOSE[18570] res_pjsip/pjsip_configuration.c: Contact {ext}/sip:{ext}@10.0.0."
            f"{r.randint(2, 250)}:5060 is now Reachable.  RTT: {r.uniform(0.2, 40):.3f} msec"
        )
    elif k == 8:  # a pjproject line is always followed by an empty line
        g.emit(
            f'[{s}] VERBOSE[18567] pjproject: \t       sip_endpoint.c .Module "mod-evsub" '
            f"registered"
        )
        g.emit("")
    elif k == 9:
        g.emit(
            f"[{s}] WARNING[18577] chan_sip.c: Retransmission timeout reached on transmission "
            f"{r.randint(0, 2**40):x}@10.0.0.1 for seqno 102 (Critical Response) -- See "
            f"https://wiki.asterisk.org/wiki/display/AST/SIP+Retransmissions"
        )
    elif k == 10:
        g.emit(
            f"[{s}] VERBOSE[{r.randint(2000, 30000)}]{c} pbx.c: Spawn extension (from-internal, "
            f"{ext}, 3) exited non-zero on '{ch}'"
        )
    elif k == 11:
        g.emit(
            f"[{s}] DTMF[{r.randint(2000, 30000)}]{c} channel.c: DTMF end '{r.randint(0, 9)}' "
            f"received on {ch}, duration 120 ms"
        )
    elif k == 12:
        g.emit(f"[{s}] VERBOSE[1490] manager.c: Manager 'monitor' logged off from 127.0.0.1")
    else:  # a legitimate phone registering: context, never an attack
        g.emit(
            f"[{s}] VERBOSE[18577] chan_sip.c: Registered SIP '{ext}' at 10.0.1.{r.randint(2, 250)}"
            f":5060"
        )


# -- attacks ------------------------------------------------------------------------------------
def svmap(g: Gen, ip: str) -> None:
    port, cid = g.rng.randint(5061, 5099), str(g.rng.randint(10**20, 10**24))
    g.emit(
        f"[{g.stamp()}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'OPTIONS' from "
        f"'\"sipvicious\" <sip:100@1.1.1.1>' failed for '{hostport(ip, port)}' (callid: {cid}) - "
        "No matching endpoint found",
        ip,
        "unknown_account",
    )
    g.emit(
        g.security("InvalidAccountID", "PJSIP", "100", cid, remote(ip, port)), ip, "unknown_account"
    )
    g.emit(
        g.security(
            "ChallengeSent",
            "PJSIP",
            "<unknown>",
            cid,
            remote(ip, port),
            ',Challenge=""',
            "Informational",
        ),
        ip,
        "challenge_sent",
    )


def svwar(g: Gen, ip: str) -> None:
    user = str(g.rng.randint(100, 99999))
    port, cid = g.rng.randint(5061, 5099), str(g.rng.randint(10**8, 10**9))
    g.emit(
        f"[{g.stamp()}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
        f"'\"{user}\" <sip:{user}@10.0.0.1>' failed for '{hostport(ip, port)}' (callid: {cid}) - "
        "No matching endpoint found",
        ip,
        "unknown_account",
    )
    g.emit(
        g.security("InvalidAccountID", "PJSIP", user, cid, remote(ip, port)), ip, "unknown_account"
    )


def svcrack(g: Gen, ip: str) -> None:
    port, cid, user = 5301, f"{zlib.crc32(ip.encode())}", g.rng.choice(["1001", "1002", "200"])
    g.emit(
        f"[{g.stamp()}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
        f"'\"{user}\" <sip:{user}@10.0.0.1>' failed for '{hostport(ip, port)}' (callid: {cid}) - "
        "Failed to authenticate",
        ip,
        "wrong_password",
    )
    g.emit(
        g.security(
            "ChallengeResponseFailed",
            "PJSIP",
            user,
            cid,
            remote(ip, port),
            ',Challenge="1795311427/47a0",Response="3b70",ExpectedResponse=""',
        ),
        ip,
        "wrong_password",
    )


def chan_sip_register(g: Gen, ip: str, account: str = "") -> None:
    port, user = g.rng.randint(5000, 65000), g.rng.choice(["2001", "admin", "100", "test"])
    user = account or user  # a phone mistyping its own account's password
    g.emit(
        f"[{g.stamp()}] NOTICE[18577] chan_sip.c: Registration from "
        f"'\"{user}\" <sip:{user}@10.0.0.1>'"
        f" failed for '{hostport(ip, port)}' - Wrong password",
        ip,
        "wrong_password",
    )
    g.emit(
        g.security(
            "InvalidPassword",
            "SIP",
            user,
            f"0x7f0f{g.rng.randint(0, 2**24):06x}",
            remote(ip, port),
            ',Challenge="654d",ReceivedChallenge="654d",ReceivedHash="39"',
            version="2",
        ),
        ip,
        "wrong_password",
    )


def chan_sip_invite(g: Gen, ip: str) -> None:
    """The NOTICE has no address; its InvalidPassword, 1 ms later, has."""
    port, user = g.rng.randint(5000, 65000), g.rng.choice(["2001", "2002"])
    g.emit(
        f"[{g.stamp()}] NOTICE[18577][{g.tag()}] chan_sip.c: Failed to authenticate device "
        f'"{user}" <sip:{user}@10.0.0.1:5070>;tag={g.rng.randint(0, 2**32):x} '
        "for INVITE, code = -1",
        ip,
        "wrong_password",
        addressed=False,
    )
    g.t += 0.001
    g.emit(
        g.security(
            "InvalidPassword",
            "SIP",
            f"00{g.rng.randint(10**9, 10**12)}",
            f"0x7f0f{g.rng.randint(0, 2**24):06x}",
            remote(ip, port),
            ',Challenge="654d",ReceivedChallenge="654d",ReceivedHash="39"',
            version="2",
        ),
        ip,
        "wrong_password",
    )


def chan_sip_nopeer(g: Gen, ip: str) -> None:
    port, user = g.rng.randint(5000, 65000), str(g.rng.randint(10**8, 10**9))
    g.emit(
        f"[{g.stamp()}] NOTICE[18577] chan_sip.c: Registration from "
        f"'\"{user}\"<sip:{user}@10.0.0.1>'"
        f" failed for '{hostport(ip, port)}' - No matching peer found",
        ip,
        "unknown_account",
    )
    g.emit(
        g.security(
            "InvalidAccountID", "SIP", user, f"0x7f{g.rng.randint(0, 2**24):06x}", remote(ip, port)
        ),
        ip,
        "unknown_account",
    )


def call_rejected(g: Gen, ip: str) -> None:
    port, number = g.rng.randint(5000, 65000), f"00{g.rng.randint(10**9, 10**12)}"
    if g.rng.random() < 0.5:
        g.emit(
            f"[{g.stamp()}] NOTICE[18577][{g.tag()}] chan_sip.c: Call from '' "
            f"({hostport(ip, port)}) "
            f"to extension '{number}' rejected because extension not found in context 'default'.",
            ip,
            "call_rejected",
        )
        g.emit(
            g.security(
                "FailedACL",
                "SIP",
                "s",
                f"0x7f{g.rng.randint(0, 2**24):06x}",
                remote(ip, port),
                ',ACLName="no_extension_match"',
            ),
            ip,
            "call_rejected",
        )
    else:
        g.emit(
            f"[{g.stamp()}] NOTICE[18590] res_pjsip_session.c: anonymous: Call (UDP:"
            f"{hostport(ip, port)}) to extension '{number}' rejected because extension not found "
            "in "
            "context 'anonymous'.",
            ip,
            "call_rejected",
        )


def iax2(g: Gen, ip: str) -> None:
    peer = g.rng.choice(["trunk", "office", "Fail2ban"])
    if g.rng.random() < 0.5:
        g.emit(
            f"[{g.stamp()}] NOTICE[18600] chan_iax2.c: Host {ip} failed MD5 authentication for "
            f"'{peer}' (e7df7cd2ca07f4f1ab415d457a6e1c13 != 53ac4bc41ee4ec77888ed4aa50677247)",
            ip,
            "wrong_password",
        )
    else:
        g.emit(
            f"[{g.stamp()}] NOTICE[18600] chan_iax2.c: No registration for peer '{peer}' "
            f"(from {ip})",
            ip,
            "unknown_account",
        )


def ami(g: Gen, ip: str) -> None:
    user, lwp = g.rng.choice(["admin", "amiadmin", "manager"]), g.rng.randint(1000, 9000)
    g.emit(
        f"[{g.stamp()}] NOTICE[{lwp}] manager.c: {ip} failed to authenticate as '{user}'",
        ip,
        "ami_login_failed",
    )
    g.emit(
        g.security(
            "InvalidPassword",
            "AMI",
            user,
            f"0x7f{g.rng.randint(0, 2**24):06x}",
            remote(ip, g.rng.randint(40000, 60000), "TCP"),
            version="2",
        ),
        ip,
        "ami_login_failed",
    )


def pjproject_drop(g: Gen, ip: str) -> None:
    g.emit(
        f"[{g.stamp()}] WARNING[18567] pjproject: \t       sip_transport.c Dropping "
        f"{g.rng.randint(300, 900)} bytes packet from UDP "
        f"{hostport(ip, g.rng.randint(5000, 65000))} : "
        "PJSIP syntax error exception when parsing 'From' header on line 4 col 0",
        ip,
        "malformed_request",
    )
    g.emit("")


def challenge_flood(g: Gen, ip: str) -> None:
    """chan_sip answers an unknown REGISTER flood with challenges only (never answered)."""
    g.emit(
        g.security(
            "ChallengeSent",
            "SIP",
            "flood999",
            f"0x7f{g.rng.randint(0, 2**24):06x}",
            remote(ip, g.rng.randint(5000, 65000)),
            ',Challenge="633cadd3"',
            "Informational",
        ),
        ip,
        "challenge_unanswered",
    )


def injection(g: Gen, ip: str) -> None:
    port = g.rng.randint(5000, 65000)
    g.emit(
        f"[{g.stamp()}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'INVITE' from "
        f"'\"1001' failed for '{INJECTED}:5060' - Wrong password\" <sip:100@10.0.0.1>' failed for "
        f"'{hostport(ip, port)}' (callid: {g.rng.randint(0, 2**48):x}@10.0.0.1) - "
        "No matching endpoint found",
        ip,
        "unknown_account+log_tampering",
    )


ATTACKS: list[tuple[Callable[[Gen, str], None], int]] = [
    (svmap, 20),
    (svwar, 20),
    (svcrack, 20),
    (chan_sip_register, 12),
    (chan_sip_invite, 6),
    (chan_sip_nopeer, 5),
    (call_rejected, 5),
    (iax2, 3),
    (ami, 3),
    (pjproject_drop, 2),
    (challenge_flood, 3),
    (injection, 1),
]


# -- low and slow, and the phones that must not be taken for it ---------------------------------
SLOW_NET = "198.18."  # low-and-slow attackers: 198.18.x.y (RFC 2544 benchmark range)
PHONE_NET = "198.19."  # benign phones that mistype: 198.19.x.y; they are not in the truth file


def registered(g: Gen, ip: str, account: str) -> None:
    """A phone's successful chan_sip registration (context, not an attack)."""
    g.emit(f"[{g.stamp()}] VERBOSE[18577] chan_sip.c: Registered SIP '{account}' at {ip}:5060")


def slow_schedule(seed: int, slow: int, span: float) -> list[tuple[float, str, str]]:
    """(time, what, ip) for `slow` low-and-slow attackers and as many benign phones, within
    `span` seconds of START. An attacker makes 20-50 failures over one or two hours, never more
    than 2 a minute, unknown accounts and wrong passwords mixed, and never succeeds. A phone
    mistypes its password 1-3 times, then registers, and re-registers every hour after."""
    rng = random.Random(seed * 7919 + 17)  # its own stream: slow=0 leaves the log unchanged
    out: list[tuple[float, str, str]] = []
    for i in range(slow):
        ip = f"{SLOW_NET}{i // 250}.{i % 250 + 1}"
        n, length = rng.randint(20, 50), rng.uniform(3600.0, 7200.0)
        t = START + rng.uniform(0.0, max(span - length - 600.0, 1.0))
        for _ in range(n):
            out.append((t, rng.choice(["svcrack", "svwar", "chan_sip_register"]), ip))
            t += max(30.0, rng.uniform(0.5, 1.5) * length / n)
        phone = f"{PHONE_NET}{i // 250}.{i % 250 + 1}"
        t = START + rng.uniform(0.0, max(span - 3600.0, 1.0))
        for _ in range(rng.randint(1, 3)):
            out.append((t, "mistype", phone))
            t += rng.uniform(20.0, 90.0)
        while t < START + span:
            out.append((t, "registered", phone))
            t += 3600.0
    out.sort()
    return out


def _slow_step(g: Gen, what: str, ip: str) -> None:
    _, _, a, b = ip.split(".")
    account = f"3{int(a):03d}{int(b):03d}"  # each phone its own account
    if what == "mistype":
        chan_sip_register(g, ip, account)
        del g.truth[-2:]  # a phone's failure: its lines are not attack lines in the truth file
    elif what == "registered":
        registered(g, ip, account)
    else:
        g.attempt += 1
        {"svcrack": svcrack, "svwar": svwar, "chan_sip_register": chan_sip_register}[what](g, ip)


def _many_v4(rng: random.Random, n: int) -> list[str]:
    """n distinct public-looking IPv4 addresses (seeded)."""
    seen: set[str] = set()
    while len(seen) < n:
        a = rng.randint(11, 223)
        seen.add(f"{a}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}")
    out = sorted(seen)
    rng.shuffle(out)
    return out


def generate(
    path: Path,
    truth_path: Path,
    lines: int,
    seed: int,
    attack_share: float = 0.05,
    sources: int = 0,
    slow: int = 0,
) -> int:
    """Write about `lines` lines; returns the number written.

    `sources` = 0: 300 IPv4 and 40 IPv6 attackers, a few heavy hitters and a long tail (the
    default log). `sources` = N: a pool of N (90% IPv4, 10% IPv6 in distinct /64s), and most
    attempts come from a source not seen before until the pool is used up, so about N distinct
    sources attack (a distributed scan, the memory case). `slow` = N adds N low-and-slow
    attackers and N benign phones that mistype (slow_schedule), on their own random stream.
    """
    rng = random.Random(seed)
    g = Gen(rng)
    n4, n6 = (300, 40) if sources <= 0 else (sources - sources // 10, sources // 10)
    if sources <= 0:
        g.attackers_v4 = [
            f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
            f"{rng.randint(1, 254)}"
            for _ in range(n4)
        ]
    else:
        g.attackers_v4 = _many_v4(rng, n4)
    # one /64 each: the third group (and the second, past 65535 sources) tells them apart
    g.attackers_v6 = [
        f"2001:{0xDB8 + (i >> 16):x}:{i & 0xFFFF:x}:{rng.randint(0, 0xFFFF):x}::"
        f"{rng.randint(1, 0xFFFF):x}"
        for i in range(1, n6 + 1)
    ]
    fresh = [*g.attackers_v4, *g.attackers_v6] if sources > 0 else []
    rng.shuffle(fresh)
    attacks, weights = zip(*ATTACKS, strict=True)
    mean_gap = 86400.0 / lines  # one day of log
    schedule = slow_schedule(seed, slow, 86400.0) if slow > 0 else []
    if schedule:
        # its lines (about 2 per step) count in `lines`, so the day ends early: fit it in
        span = 86400.0 * max(0.1, 1.0 - 2.2 * len(schedule) / lines) * 0.95
        schedule = slow_schedule(seed, slow, span)
    next_slow = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out, open(truth_path, "w") as tf:
        tf.write("line\tip\tattempt\tkind\taddressed\n")
        while g.line_no < lines:
            g.tick(mean_gap)
            while next_slow < len(schedule) and schedule[next_slow][0] <= g.t:
                _slow_step(g, *schedule[next_slow][1:])
                next_slow += 1
            if rng.random() < attack_share / 2.2:  # attack blocks average ~2.2 lines
                g.attempt += 1
                pool = g.attackers_v6 if rng.random() < 0.1 else g.attackers_v4
                # a few heavy hitters, a long tail
                ip = pool[min(int(rng.paretovariate(1.2)) - 1, len(pool) - 1)]
                if fresh:
                    # attempts still to come, estimated from the share so far: spread the
                    # unused sources over them, so the whole pool attacks by the end
                    left = (lines - g.line_no) * g.attempt / max(g.line_no, 1)
                    if rng.random() < len(fresh) / max(left, 1.0):
                        ip = fresh.pop()
                rng.choices(attacks, weights)[0](g, ip)
            else:
                noise(g)
            if len(g.lines) >= 20000:
                out.write("\n".join(g.lines) + "\n")
                tf.write("\n".join(g.truth) + ("\n" if g.truth else ""))
                g.lines.clear()
                g.truth.clear()
        out.write("\n".join(g.lines) + ("\n" if g.lines else ""))
        tf.write("\n".join(g.truth) + ("\n" if g.truth else ""))
    return g.line_no


def log_name(
    lines: int, seed: int, sources: int = 0, attack_share: float = 0.05, slow: int = 0
) -> str:
    """The default log keeps its old name; other shapes say what they are."""
    extra = f"-s{sources}" if sources > 0 else ""
    extra += f"-a{attack_share:g}" if attack_share != 0.05 else ""
    extra += f"-slow{slow}" if slow > 0 else ""
    return f"asterisk-{lines}-{seed}{extra}.log"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--sources", type=int, default=0, help="distinct attacking sources (0: 340)")
    ap.add_argument("--attack-share", type=float, default=0.05, help="share of attack lines")
    ap.add_argument("--slow", type=int, default=0, help="low-and-slow attackers (and phones)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / log_name(args.lines, args.seed, args.sources, args.attack_share, args.slow)
    n = generate(
        log,
        log.with_suffix(".truth.tsv"),
        args.lines,
        args.seed,
        args.attack_share,
        args.sources,
        args.slow,
    )
    print(f"{log}: {n} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
