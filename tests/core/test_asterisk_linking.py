"""Count attempts, not lines: linking address-less lines, dedup across files/AMI, challenges."""

from __future__ import annotations

import itertools
from ipaddress import ip_address
from zoneinfo import ZoneInfo

import pytest

from sipguard.core.asterisk import LogNormalizer, parse_security_fields, security_event
from sipguard.core.events import Event, Kind, Origin

INVITE_NOTICE = (
    "[2026-11-22 01:36:25.462] NOTICE[18577][C-00000005] chan_sip.c: Failed to authenticate device "
    '"2001" <sip:2001@127.0.0.1:5070>;tag=8d712f9e for INVITE, code = -1'
)
INVALID_PASSWORD = (
    '[2026-11-22 01:36:25.463] SECURITY[18584] res_security_log.c: SecurityEvent="InvalidPassword",'
    'EventTV="2026-11-22T01:36:25.462+0000",Severity="Error",Service="SIP",EventVersion="2",'
    'AccountID="0044201234567",SessionID="0x7f0f30017c20",LocalAddress="IPV4/UDP/127.0.0.1/5070",'
    'RemoteAddress="IPV4/UDP/127.0.0.1/42079",Challenge="654d45e8",ReceivedChallenge="654d45e8",'
    'ReceivedHash="394fb9a54930b380919ee400cbb7642a"'
)


def pjsip(
    t: str, reason: str, port: int = 5301, callid: str = "1951665900", user: str = "1001"
) -> str:
    return (
        f"[2026-11-22 {t}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
        f"'\"{user}\" <sip:{user}@127.0.0.1>' failed for '127.0.0.1:{port}' "
        f"(callid: {callid}) - {reason}"
    )


def sec(
    t: str,
    name: str,
    account: str = "1001",
    session: str = "1951665900",
    port: int = 5301,
    service: str = "PJSIP",
    extra: str = "",
) -> str:
    return (
        f'[2026-11-22 {t}] SECURITY[18584] res_security_log.c: SecurityEvent="{name}",'
        f'EventTV="2026-11-22T{t}+0000",Severity="Error",Service="{service}",EventVersion="1",'
        f'AccountID="{account}",SessionID="{session}",LocalAddress="IPV4/UDP/127.0.0.1/5060",'
        f'RemoteAddress="IPV4/UDP/127.0.0.1/{port}"{extra}'
    )


def run(n: LogNormalizer, lines: list[str], source: str = "messages") -> list[Event]:
    out: list[Event] = []
    for i, line in enumerate(lines, 1):
        out += n.feed_line(line, source, i)
    return out


def test_invite_failure_takes_the_address_of_its_invalid_password() -> None:
    n = LogNormalizer()
    first = n.feed_line(INVITE_NOTICE, "messages", 1)
    assert first == []  # address-less: waits for its partner
    (ev,) = n.feed_line(INVALID_PASSWORD, "messages", 2)  # returned at once, merged
    assert ev.kind is Kind.WRONG_PASSWORD
    assert ev.ip == ip_address("127.0.0.1") and ev.port == 42079
    assert ev.account == "2001"  # the device that tried, from the NOTICE
    assert ev.target == "0044201234567"  # InvalidPassword names the dialled number
    assert ev.user_agent == "2001"
    assert n.flush() == []
    assert n.stats.unlinked == 0


def test_invite_failure_logged_after_its_security_event() -> None:
    register = (
        "[2026-11-22 01:36:26.000] NOTICE[18577] chan_sip.c: Registration from "
        "'<sip:2001@127.0.0.1>' failed for '127.0.0.1:42079' - Wrong password"
    )
    n = LogNormalizer()
    out = run(n, [INVALID_PASSWORD, INVITE_NOTICE, register]) + n.flush()
    # one INVITE attempt, then one REGISTER guess from the same port: two attempts
    assert [(e.kind, e.port) for e in out] == [(Kind.WRONG_PASSWORD, 42079)] * 2
    assert n.stats.duplicates == 1


def test_unlinked_invite_failure_is_kept_without_address() -> None:
    n = LogNormalizer(link_window=2.0)
    assert n.feed_line(INVITE_NOTICE, "messages", 1) == []
    assert n.tick(1795311385.462 + 1.0) == []  # still inside the window
    (ev,) = n.tick(1795311385.462 + 3.0)
    assert ev.kind is Kind.WRONG_PASSWORD and ev.ip is None
    assert n.stats.unlinked == 1


def test_thread_ids_and_distant_lines_do_not_link() -> None:
    n = LogNormalizer(link_window=2.0)
    late = INVALID_PASSWORD.replace("01:36:25.46", "01:36:35.46")
    out = run(n, [INVITE_NOTICE, late]) + n.flush()
    kinds = sorted((e.kind.value, str(e.ip)) for e in out)
    assert kinds == [("wrong_password", "127.0.0.1"), ("wrong_password", "None")]


def test_one_attempt_in_messages_security_and_ami_counts_once() -> None:
    notice = pjsip("01:37:07.992", "Failed to authenticate")
    crf = sec("01:37:07.992", "ChallengeResponseFailed", extra=',Challenge="1",Response="2"')
    n = LogNormalizer()
    out = run(n, [notice, crf], "messages") + run(n, [crf], "security")
    fields = parse_security_fields(crf)
    fields.pop("SecurityEvent")
    ami_fields = {"Event": "ChallengeResponseFailed", **fields}
    ami = security_event(ami_fields, None, Origin("ami"))
    assert ami is not None
    out += n.accept(ami) + n.flush()
    assert [(e.kind, e.port) for e in out] == [(Kind.WRONG_PASSWORD, 5301)]
    assert n.stats.duplicates == 3


def test_security_file_after_messages_still_dedups() -> None:
    notices = [pjsip(f"01:37:0{i}.100", "Failed to authenticate") for i in range(5)]
    crfs = [sec(f"01:37:0{i}.100", "ChallengeResponseFailed") for i in range(5)]
    n = LogNormalizer()
    out = run(n, notices, "messages") + run(n, crfs, "security") + n.flush()
    assert [e.kind for e in out] == [Kind.WRONG_PASSWORD] * 5


def test_svcrack_guesses_on_one_callid_are_separate_attempts() -> None:
    lines = []
    for i in range(3):
        t = f"01:37:07.{100 + i * 5}"
        lines += [pjsip(t, "Failed to authenticate"), sec(t, "ChallengeResponseFailed")]
    n = LogNormalizer()
    out = run(n, lines) + n.flush()
    assert [e.kind for e in out] == [Kind.WRONG_PASSWORD] * 3


def test_pjsip_unknown_user_answering_the_challenge_is_unknown_account() -> None:
    cid = "51e0b91f32e317b7@127.0.0.1"
    lines = [
        pjsip("01:36:08.600", "No matching endpoint found", 39131, cid, "9999"),
        sec("01:36:08.600", "InvalidAccountID", "9999", cid, 39131),
        sec("01:36:08.600", "ChallengeSent", "<unknown>", cid, 39131, extra=',Challenge=""'),
        pjsip("01:36:08.622", "Failed to authenticate", 39131, cid, "9999"),
        sec("01:36:08.622", "ChallengeResponseFailed", "<unknown>", cid, 39131),
    ]
    n = LogNormalizer()
    out = run(n, lines) + n.flush()
    attacks = [e for e in out if e.is_attack]
    assert [e.kind for e in attacks] == [Kind.UNKNOWN_ACCOUNT, Kind.UNKNOWN_ACCOUNT]
    assert {e.account for e in attacks} == {"9999"}
    assert [e.kind for e in out if not e.is_attack] == [Kind.CHALLENGE_SENT]


def test_unanswered_challenge_after_its_window() -> None:
    ch = sec("01:34:41.650", "ChallengeSent", "sip:100@1.1.1.1", "0x7f0f30021b10", 5061, "SIP")
    n = LogNormalizer(challenge_window=5.0)
    (sent,) = n.feed_line(ch, "security", 1)
    assert sent.kind is Kind.CHALLENGE_SENT
    assert n.tick(sent.time + 4.0) == []
    (unanswered,) = n.tick(sent.time + 5.5)
    assert unanswered.kind is Kind.CHALLENGE_UNANSWERED
    assert unanswered.ip == ip_address("127.0.0.1") and unanswered.port == 5061
    assert n.flush() == []


def test_answered_challenge_is_not_unanswered() -> None:
    ch = sec("01:37:07.000", "ChallengeSent", session="0xabc", service="SIP")
    bad = sec("01:37:07.010", "InvalidPassword", session="0xabc", service="SIP")
    n = LogNormalizer()
    out = run(n, [ch, bad]) + n.flush()
    assert [e.kind for e in out] == [Kind.CHALLENGE_SENT, Kind.WRONG_PASSWORD]


def test_a_flood_of_unanswered_challenges_is_released_by_later_lines() -> None:
    lines = [
        sec(f"01:37:{s:02d}.000", "ChallengeSent", "flood", f"0x{s}", 5400 + s, "SIP")
        for s in range(0, 20)
    ]
    n = LogNormalizer(challenge_window=5.0)
    out = run(n, lines)
    unanswered = [e for e in out if e.kind is Kind.CHALLENGE_UNANSWERED]
    assert len(unanswered) == 14  # those older than 5 s when the last line came
    out += n.flush()
    assert sum(e.kind is Kind.CHALLENGE_UNANSWERED for e in out) == 20


def test_malformed_lines_of_one_request_link_to_their_challenge() -> None:
    lines = [
        "[2026-11-22 01:36:44.561] WARNING[18577][C-00000007] sip/reqresp_parser.c: "
        "No closing bracket found in ' <sip:1001@127.0.0.1;tag=abc'",
        "[2026-11-22 01:36:44.561] NOTICE[18577][C-00000007] chan_sip.c: "
        "From address missing 'sip:', using it anyway",
        sec("01:36:44.561", "ChallengeSent", " <sip:1001@127.0.0.1;tag=abc", "0x7f", 5061, "SIP"),
    ]
    n = LogNormalizer()
    out = run(n, lines) + n.flush()
    assert [(e.kind, e.port) for e in out] == [
        (Kind.MALFORMED_REQUEST, 5061),
        (Kind.CHALLENGE_SENT, 5061),
    ]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_username_mismatch_is_one_attempt(order: tuple[int, ...]) -> None:
    lines = [
        "[2026-11-22 01:37:12.000] WARNING[18577] chan_sip.c: "
        "username mismatch, have <2002>, digest has <bob-2002>",
        "[2026-11-22 01:37:12.000] NOTICE[18577] chan_sip.c: Registration from "
        "'\"2002\" <sip:2002@127.0.0.1>' failed for '127.0.0.1:5303' - Username/auth name mismatch",
        sec("01:37:12.000", "ChallengeResponseFailed", "2002", "0x9", 5303, "SIP"),
    ]
    n = LogNormalizer()
    out = run(n, [lines[i] for i in order]) + n.flush()
    assert [(e.kind, e.account, e.port) for e in out] == [(Kind.AUTH_NAME_MISMATCH, "2002", 5303)]


def test_ami_unknown_user_two_notices_and_one_security_event() -> None:
    lines = [
        "[2026-11-22 01:39:11.882] NOTICE[1723] manager.c: 127.0.0.1 tried to authenticate "
        "with nonexistent user 'admin'",
        "[2026-11-22 01:39:11.882] NOTICE[1723] manager.c: "
        "127.0.0.1 failed to authenticate as 'admin'",
        sec("01:39:11.882", "InvalidAccountID", "admin", "0x5", 47890, "AMI"),
    ]
    n = LogNormalizer()
    out = run(n, lines) + n.flush()
    assert [(e.kind, e.account) for e in out] == [(Kind.AMI_LOGIN_FAILED, "admin")]


def test_new_year_rollover_and_timezone() -> None:
    dec = (
        "[Dec 31 23:59:59] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' "
        "failed for '1.2.3.4:5' - Wrong password"
    )
    jan = dec.replace("[Dec 31 23:59:59]", "[Jan  1 00:00:01]")
    n = LogNormalizer(default_year=2025)
    a, b = run(n, [dec, jan])
    assert b.time - a.time == 2.0
    assert a.time == 1767225599.0  # 2025-12-31 23:59:59 UTC
    berlin = LogNormalizer(default_year=2025, tz=ZoneInfo("Europe/Berlin"))
    (c,) = berlin.feed_line(dec, "m", 1)
    assert a.time - c.time == 3600.0


def test_pending_state_is_bounded() -> None:
    n = LogNormalizer()
    out: list[Event] = []
    for i in range(6000):
        line = (
            f"[2026-11-22 01:36:25.{i % 1000:03d}] NOTICE[1][C-{i:08x}] chan_sip.c: "
            f'Failed to authenticate device "u{i}" <sip:u{i}@127.0.0.1>;tag=t for INVITE, code = -1'
        )
        out += n.feed_line(line, "m", i)
    out += n.flush()
    assert len(out) == 6000  # none lost: evicted ones are released without address
    assert n.stats.evicted > 0
    assert n.stats.unlinked == 6000


def test_pairs_follow_the_callid() -> None:
    lines = [
        pjsip("01:37:07.100", "No matching endpoint found", callid="A"),
        pjsip("01:37:07.101", "No matching endpoint found", callid="B"),
        sec("01:37:07.101", "InvalidAccountID", session="B"),
        sec("01:37:07.100", "InvalidAccountID", session="A"),
        sec("01:37:07.102", "InvalidAccountID", session="C"),  # its NOTICE was not logged
    ]
    n = LogNormalizer()
    out = run(n, lines) + n.flush()
    assert [e.call_id for e in out] == ["A", "B", "C"]
    assert n.stats.duplicates == 2


def _attempt(i: int, t: str) -> list[str]:
    """One svwar-style attempt from its own source: the PJSIP NOTICE and its security event."""
    ip = f"198.18.{i // 250}.{i % 250 + 1}"
    notice = (
        f"[2026-11-22 {t}] NOTICE[18562] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from "
        f"'\"{i}\" <sip:{i}@10.0.0.1>' failed for '{ip}:5070' (callid: c{i}) - "
        "No matching endpoint found"
    )
    security = (
        f'[2026-11-22 {t}] SECURITY[18584] res_security_log.c: SecurityEvent="InvalidAccountID",'
        f'EventTV="2026-11-22T{t}+0000",Severity="Error",Service="PJSIP",EventVersion="1",'
        f'AccountID="{i}",SessionID="c{i}",LocalAddress="IPV4/UDP/10.0.0.1/5060",'
        f'RemoteAddress="IPV4/UDP/{ip}/5070"'
    )
    return [notice, security]


def test_many_sources_paired_attempts_leave_no_pair_state() -> None:
    """A distributed scan (thousands of sources, each paired NOTICE + security event) counts
    each attempt once and keeps no per-source pairing state once the pair is complete."""
    n = LogNormalizer()
    lines = [
        line for i in range(3000) for line in _attempt(i, f"01:{i // 60 % 60:02d}:{i % 60:02d}.000")
    ]
    out = run(n, lines) + n.flush()
    assert len(out) == 3000
    assert len({e.ip for e in out}) == 3000
    assert n.stats.duplicates == 3000
    assert len(n._linker._pairs) == 0  # emptied slots are dropped, not kept per source


def test_one_sided_lines_still_pair_with_a_later_file() -> None:
    """Module lines waiting in the messages file are found by the security file read after it
    (time goes back), for many sources at once: the compact pair state keeps that behaviour."""
    n = LogNormalizer()
    attempts = [_attempt(i, f"02:00:{i % 60:02d}.{i // 60:03d}") for i in range(500)]
    messages = run(n, [a[0] for a in attempts], "messages")
    security = run(n, [a[1] for a in attempts], "security") + n.flush()
    assert len(messages) == 500
    assert security == []
    assert n.stats.duplicates == 500
