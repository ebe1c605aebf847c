"""Calls and registrations without credentials: toll numbers and guests.

Every INVITE goes through `SipClient.invite`, which cancels at the first ringing and hangs up a
200 at once, so a probe can show that a call would get out without ever letting one through.
"""

from __future__ import annotations

from sipguard.data import read_lines
from sipguard.probe.context import ProbeContext
from sipguard.probe.model import Severity
from sipguard.probe.session import Answer

__all__ = ["call_outcome", "check_guests", "check_toll", "default_numbers"]

ANONYMOUS = "anonymous"
_KEPT_OUT = (401, 403, 407)


def default_numbers() -> list[str]:
    return read_lines("probe_numbers.txt")


def call_outcome(answer: Answer) -> str:
    """'routed' (the dialplan took the call), 'challenged', 'refused' or 'silent'."""
    statuses = answer.statuses
    if answer.answered or any(100 < s < 300 for s in statuses):
        return "routed"
    final = answer.final
    if final is None:
        return "routed" if answer.cancelled else "silent"
    if final.status in (401, 407):
        return "challenged"
    if final.status == 487 and answer.cancelled:
        return "routed"  # it was still proceeding when we cancelled after 100 Trying
    return "refused"


def _describe(answer: Answer) -> str:
    codes = " ".join(str(s) for s in answer.statuses) or "nothing"
    tail = ", cancelled" if answer.cancelled else ""
    tail += ", answered then hung up" if answer.answered else ""
    return f"answers {codes}{tail}"


def check_toll(ctx: ProbeContext) -> None:
    """An INVITE without credentials to outside-looking numbers; stop at the first routed one."""
    numbers = list(ctx.options.numbers) or default_numbers()
    client = ctx.client
    seen: list[str] = []
    for number in numbers:
        answer = client.invite(client.build("INVITE", number, body=client.offer()))
        outcome = call_outcome(answer)
        seen.append(f"{number}: {outcome} ({_describe(answer)})")
        if outcome == "routed":
            ctx.add(
                "PROBE-TOLL-CALL",
                Severity.CRITICAL,
                f"an unauthenticated INVITE to the outside number {number} was routed by the "
                f"dialplan ({_describe(answer)}); the probe stopped it before it connected",
                "Set allowguest=no (chan_sip), remove the anonymous PJSIP endpoint, and keep "
                "outside routes out of any context a guest lands in.",
                [answer.evidence()],
                number=number,
                answered=answer.answered,
            )
            return
    ctx.note("toll", "ok", "; ".join(seen))


def check_guests(ctx: ProbeContext) -> None:
    """A call and a registration as `anonymous`, as softphones without an account send them."""
    client = ctx.client
    ext = ctx.options.extensions[0] if ctx.options.extensions else "100"
    call = client.invite(client.build("INVITE", ext, from_user=ANONYMOUS, body=client.offer()))
    outcome = call_outcome(call)
    final = call.final.status if call.final is not None else None
    # 401/407/403 keep a stranger out; 404 and the like come from a dialplan lookup, which only
    # happens once the call was let in (chan_sip allowguest, a PJSIP 'anonymous' endpoint)
    let_in = outcome == "routed" or (final is not None and final < 500 and final not in _KEPT_OUT)
    if let_in:
        ctx.add(
            "PROBE-GUEST-CALL",
            Severity.HIGH,
            f"a call from 'anonymous' to {ext} was let in without credentials "
            f"({_describe(call)}): it reached the dialplan",
            "Set allowguest=no (chan_sip) and remove the PJSIP endpoint named 'anonymous' "
            "(or give it a context that only plays a message).",
            [call.evidence()],
        )
    else:
        ctx.note("guests/call", "ok", f"anonymous call to {ext}: {outcome} ({_describe(call)})")
    reg = client.request(
        client.build(
            "REGISTER", None, from_user=ANONYMOUS, to_user=ANONYMOUS, extra=(("Expires", "0"),)
        )
    )
    if reg.final is not None and reg.final.status is not None and 200 <= reg.final.status < 300:
        ctx.add(
            "PROBE-GUEST-REGISTER",
            Severity.HIGH,
            f"a REGISTER as 'anonymous' without credentials was accepted ({reg.status})",
            "Require authentication on every endpoint that accepts registrations.",
            [reg.evidence()],
        )
    else:
        ctx.note("guests/register", "ok", f"anonymous REGISTER: {reg.status}")
