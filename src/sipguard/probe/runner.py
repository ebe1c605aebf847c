"""Runs the checks in priority order within the ledger's bounds and gathers the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sipguard.probe import checks_auth, checks_calls, checks_services, checks_sip
from sipguard.probe.context import Options, ProbeContext
from sipguard.probe.ledger import BudgetSpent, Ledger, Sent
from sipguard.probe.model import CheckNote, ProbeFinding
from sipguard.probe.netio import Net
from sipguard.probe.session import SipClient, Target
from sipguard.probe.transport import Transport

__all__ = ["CHECK_NAMES", "ProbeResult", "run_probe"]

_SIP: dict[str, Callable[[ProbeContext], None]] = {
    "fingerprint": checks_sip.check_fingerprint,
    "enumeration": checks_sip.check_enumeration,
    "toll": checks_calls.check_toll,
    "domain": checks_sip.check_domain,
    "guests": checks_calls.check_guests,
}
_SERVICES: dict[str, Callable[[ProbeContext, Net], None]] = {
    "ami": checks_services.check_ami,
    "http": checks_services.check_http,
    "iax": checks_services.check_iax,
    "tls": checks_services.check_tls,
}
_LAST: dict[str, Callable[[ProbeContext], None]] = {
    "credentials": checks_auth.check_credentials,
    "protection": checks_auth.check_protection,  # last: it may get this source banned
}
CHECK_NAMES = (*_SIP, *_SERVICES, *_LAST)


@dataclass
class ProbeResult:
    target: Target
    findings: list[ProbeFinding]
    notes: list[CheckNote]
    sent: list[Sent]
    data: dict[str, object] = field(default_factory=dict)
    stopped: str | None = None  # why the probe ended early (a bound reached, a socket error)
    elapsed: float = 0.0


def run_probe(
    target: Target,
    options: Options,
    transport: Transport,
    net: Net,
    ledger: Ledger,
    timeout: float = 2.0,
    token: Callable[[], str] | None = None,
) -> ProbeResult:
    client = (
        SipClient(transport, target, ledger.now, timeout)
        if token is None
        else SipClient(transport, target, ledger.now, timeout, token)
    )
    ctx = ProbeContext(client, target, ledger, options)
    wanted = set(options.checks or CHECK_NAMES)
    stopped = None
    try:
        for name in CHECK_NAMES:
            if name not in wanted:
                continue
            if name in _SERVICES:
                _SERVICES[name](ctx, net)
            else:
                (_SIP.get(name) or _LAST[name])(ctx)
    except BudgetSpent as exc:
        stopped = str(exc)
    except OSError as exc:
        stopped = f"network error: {exc}"
    return ProbeResult(
        target, ctx.findings, ctx.notes, ledger.sent, ctx.data, stopped, ledger.elapsed()
    )
