"""Credentials against the one account the admin names, and the protection in front of the PBX."""

from __future__ import annotations

from sipguard.probe.context import ProbeContext
from sipguard.probe.model import Severity
from sipguard.probe.request import digest_authorization, parse_challenge
from sipguard.probe.session import Answer

__all__ = ["MAX_GUESS", "check_credentials", "check_protection", "guesses", "register_with"]

MAX_GUESS = 1000
_PATTERNS = (
    "{u}",
    "{r}",
    "{u}{u}",
    "{u}123",
    "123{u}",
    "1234",
    "12345",
    "123456",
    "0000",
    "1111",
    "secret",
    "password",
    "pass{u}",
    "{u}pass",
)


def guesses(user: str, limit: int) -> list[str]:
    """The extension's patterns first, then the common-password list (zxcvbn's, by rank)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    out = dict.fromkeys(p.format(u=user, r=user[::-1]) for p in _PATTERNS)
    for word in FREQUENCY_LISTS["passwords"]:
        if len(out) >= limit:
            break
        out.setdefault(word)
    return list(out)[:limit]


def register_with(ctx: ProbeContext, user: str, password: str) -> tuple[Answer, Answer | None]:
    """REGISTER (Expires: 0, so a hit leaves no binding), answer the challenge once."""
    client = ctx.client
    extra = (("Expires", "0"),)
    first_req = client.build("REGISTER", None, from_user=user, to_user=user, extra=extra)
    first = client.request(first_req)
    challenge = parse_challenge(first.final) if first.final is not None else None
    if challenge is None:
        return first, None
    uri = first_req.uri
    header = digest_authorization(challenge, user, password, "REGISTER", uri, client.token())
    second_req = client.build(
        "REGISTER",
        None,
        from_user=user,
        to_user=user,
        extra=(*extra, header),
        cseq=2,
        call_id=first_req.call_id,
        from_tag=first_req.from_tag,
    )
    return first, client.request(second_req)


def _ok(answer: Answer | None) -> bool:
    return answer is not None and answer.status is not None and 200 <= answer.status < 300


def check_credentials(ctx: ProbeContext) -> None:
    user = ctx.options.account
    if not user:
        ctx.note("credentials", "skipped", "no --account given")
        return
    if ctx.options.password is not None:
        first, second = register_with(ctx, user, ctx.options.password)
        works = _ok(second)
        ctx.note(
            "credentials/account",
            "ok" if works else "inconclusive",
            f"{user} with the given password: {(second or first).status}",
        )
    limit = min(ctx.options.guess, MAX_GUESS)
    if limit <= 0:
        ctx.note("credentials/guess", "skipped", "no --guess N given")
        return
    tried = 0
    for password in guesses(user, limit):
        first, second = register_with(ctx, user, password)
        tried += 1
        if second is None:
            ctx.note(
                "credentials/guess",
                "inconclusive",
                f"stopped after {tried}: REGISTER got {first.status}, not a challenge",
            )
            return
        if _ok(second):
            ctx.add(
                "PROBE-WEAK-SECRET",
                Severity.CRITICAL,
                f"the account {user} accepts a guessable password (guess {tried} of {limit}: "
                f"{password!r})",
                "Replace it with a random secret of 16+ characters (sipguard harden does this).",
                [second.evidence()],
                account=user,
                tries=tried,
            )
            return
    ctx.note("credentials/guess", "ok", f"{tried} guesses against {user}, none accepted")


def check_protection(ctx: ProbeContext) -> None:
    """Fail authentication up to N times: after how many does this source stop getting answers?"""
    limit = ctx.options.protection
    if limit <= 0:
        ctx.note("protection", "skipped", "opt-in: --protection N")
        return
    user = ctx.options.account or "sipguard-probe"
    wrong = "sipguard-probe-wrong-" + ctx.client.token()
    failures = 0
    silent = 0
    for _ in range(limit + 2):
        first, second = register_with(ctx, user, wrong)
        last = second or first
        if last.final is None:
            silent += 1
            if silent == 2:  # two unanswered in a row: blocked, not a lost datagram
                ctx.data["protection"] = {"blocked_after": failures}
                ctx.note(
                    "protection",
                    "ok",
                    f"this source stopped getting answers after {failures} failed logins",
                )
                return
            continue
        silent = 0
        failures += 1
        if failures >= limit:
            break
    ctx.data["protection"] = {"blocked_after": None}
    ctx.add(
        "PROBE-NO-PROTECTION",
        Severity.MEDIUM,
        f"{failures} failed logins from this source and the PBX still answers",
        "Run sipguard (or fail2ban) in front of the PBX so repeated failures are banned.",
        [last.evidence()],
        failures=failures,
    )
