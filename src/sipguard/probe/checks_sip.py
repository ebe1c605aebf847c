"""Checks on the SIP answers themselves: fingerprint, extension enumeration, the secret domain."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sipguard.core.sip import SipMessage
from sipguard.probe.context import ProbeContext
from sipguard.probe.model import Evidence, Severity
from sipguard.probe.request import parse_challenge
from sipguard.probe.session import Answer

__all__ = ["check_domain", "check_enumeration", "check_fingerprint", "signature"]

# a product name followed by a dotted version: "Asterisk PBX 20.20.1", "FPBX-16.0.33(18.9.0)"
_VERSION = re.compile(r"[A-Za-z][\w .()/-]*?\d+\.\d+(?:\.\d+)*")
_SDP_FIELDS = re.compile(rb"^(?:o|s)=(.*)$", re.M)


def _versions(msg: SipMessage) -> list[str]:
    out = []
    for name in ("server", "user-agent"):
        value = msg.header(name)
        if value and _VERSION.search(value):
            out.append(f"{name}: {value}")
    for m in _SDP_FIELDS.finditer(msg.body[:4096]):
        text = m.group(1).decode("utf-8", "replace")
        if _VERSION.search(text) and not text.split(" ", 1)[0].isdigit():
            out.append(f"sdp: {text}")
    return out


def check_fingerprint(ctx: ProbeContext) -> None:
    """OPTIONS to the bare host, as a scanner sends first: answered? product and version?"""
    answer = ctx.client.request(ctx.client.build("OPTIONS", None))
    final = answer.final
    if final is None:
        ctx.note("fingerprint", "ok", "no answer to OPTIONS from this source")
        ctx.data["reachable"] = False
        return
    ctx.data["reachable"] = True
    allow = final.header_values("allow")
    ctx.data["allow"] = allow
    evidence = [answer.evidence()]
    ctx.add(
        "PROBE-SIP-OPTIONS",
        Severity.INFO,
        f"the PBX answers OPTIONS from a stranger ({final.status} {final.reason}); "
        f"allowed methods: {', '.join(allow) or 'not listed'}",
        "Answer SIP only to known networks (firewall or ACL), or let sipguard ban scanners.",
        evidence,
        status=final.status,
        allow=allow,
    )
    versions = _versions(final)
    if versions:
        ctx.add(
            "PROBE-SIP-VERSION",
            Severity.LOW,
            "the PBX names its product and version: " + "; ".join(versions),
            "Set useragent= (chan_sip) / user_agent= (PJSIP [system]) and sdpowner= to a "
            "neutral name without a version.",
            evidence,
            versions=versions,
        )
    else:
        ctx.note("fingerprint", "ok", "no version in Server, User-Agent or SDP")


@dataclass(frozen=True, slots=True)
class Signature:
    """What an answer says about the user, without the parts that change every time."""

    status: int | None
    realm: str | None
    headers: tuple[str, ...]

    def describe(self) -> str:
        if self.status is None:
            return "no answer"
        realm = f", realm {self.realm!r}" if self.realm is not None else ""
        return f"{self.status}{realm}"


# headers whose presence differs by transaction, not by user
_VOLATILE = {"content-length", "date", "timestamp"}


def signature(answer: Answer) -> Signature:
    final = answer.final
    if final is None:
        return Signature(answer.status, None, ())
    challenge = parse_challenge(final)
    names = tuple(sorted({n for n, _ in final.headers} - _VOLATILE))
    return Signature(final.status, challenge.realm if challenge else None, names)


ENUM_METHODS = ("REGISTER", "INVITE", "OPTIONS", "SUBSCRIBE")


def _ask(ctx: ProbeContext, method: str, user: str) -> Answer:
    client = ctx.client
    if method == "OPTIONS":
        return client.request(client.build("OPTIONS", user, from_user="sipguard-probe"))
    if method == "SUBSCRIBE":
        extra = (("Event", "message-summary"), ("Accept", "application/simple-message-summary"))
        return client.request(client.build(method, user, from_user=user, extra=extra))
    if method == "REGISTER":
        req = client.build(method, None, from_user=user, to_user=user, extra=(("Expires", "0"),))
        return client.request(req)
    return client.invite(client.build("INVITE", user, from_user=user, body=client.offer()))


def _controls(ctx: ProbeContext) -> list[str]:
    # nine digits from the run's random tokens: numeric like the extensions, and not one of them
    out: list[str] = []
    while len(out) < 2:
        digits = "".join(c for c in ctx.client.token() if c.isdigit())
        if len(digits) >= 4 and digits not in ctx.options.extensions:
            out.append("9" + digits[:8])
    return out


def check_enumeration(ctx: ProbeContext) -> None:
    """Do existing and missing users get different answers (code, headers, realm, timing)?"""
    extensions = ctx.options.extensions
    margin = ctx.options.timing_margin
    controls = _controls(ctx)
    confirmed_all: dict[str, list[str]] = {}
    for method in ENUM_METHODS:
        base = [_ask(ctx, method, user) for user in controls]
        sigs = {signature(a) for a in base}
        if len(sigs) != 1:
            ctx.note(f"enumeration/{method}", "inconclusive", "two missing users answered apart")
            continue
        control = sigs.pop()
        slowest = max((a.delay or 0.0) for a in base)
        confirmed: list[str] = []
        evidence: list[Evidence] = []
        reasons: list[str] = []
        for ext in extensions:
            answer = _ask(ctx, method, ext)
            sig = signature(answer)
            if sig != control:
                confirmed.append(ext)
                reasons.append(f"{ext}: {sig.describe()}")
                if not evidence:
                    evidence = [answer.evidence(), base[0].evidence()]
            elif answer.delay is not None and answer.delay > slowest + margin:
                again = _ask(ctx, method, ext)  # one slow answer may be load; two are not
                if again.delay is not None and again.delay > slowest + margin:
                    confirmed.append(ext)
                    reasons.append(f"{ext}: answered {answer.delay * 1000:.0f} ms")
                    if not evidence:
                        evidence = [answer.evidence(), base[0].evidence()]
        if confirmed:
            confirmed_all[method] = confirmed
            ctx.add(
                "PROBE-SIP-ENUM",
                Severity.MEDIUM,
                f"{method} answers existing and missing users differently: missing users get "
                f"{control.describe()} (slowest {slowest * 1000:.0f} ms, margin "
                f"{margin * 1000:.0f} ms); confirmed extensions: {'; '.join(reasons)}",
                "Set alwaysauthreject=yes (chan_sip); keep PJSIP's default uniform challenge; "
                "use opaque user names that are not extension numbers.",
                evidence,
                method=method,
                confirmed=confirmed,
            )
        else:
            ctx.note(
                f"enumeration/{method}",
                "ok",
                f"{len(extensions)} extensions all answered like missing users "
                f"({control.describe()}, timing margin {margin * 1000:.0f} ms)",
            )
    ctx.data["enumerated"] = confirmed_all


def check_domain(ctx: ProbeContext) -> None:
    """With --domain: does a request to the bare address get the same answer as one to the
    domain? Then the domain keeps no scanner out. (A REGISTER of a missing user: a PBX that
    knows its domains refuses a foreign one before it looks at the user.)"""
    domain = ctx.options.domain
    if not domain:
        ctx.note("domain", "skipped", "no --domain given")
        return
    client = ctx.client
    user = _controls(ctx)[0]

    def register(host: str) -> Answer:
        extra = (("Expires", "0"),)
        return client.request(
            client.build("REGISTER", None, from_user=user, to_user=user, domain=host, extra=extra)
        )

    named = register(domain)
    bare_host = client.target.hostport
    bare = register(bare_host)
    if named.final is None:
        ctx.note("domain", "inconclusive", f"no answer to a REGISTER for {domain}")
    elif signature(bare) == signature(named):
        ctx.add(
            "PROBE-SIP-DOMAIN",
            Severity.LOW,
            f"a request to the bare address {bare_host} is answered like one to {domain} "
            f"({signature(bare).describe()}): the domain keeps no scanner out",
            "List the domain (chan_sip domain= with allowexternaldomains=no; PJSIP domain "
            "aliases) so requests to the bare address are refused.",
            [bare.evidence(), named.evidence()],
        )
    else:
        ctx.note(
            "domain",
            "ok",
            f"bare address: {signature(bare).describe()}; {domain}: {signature(named).describe()}",
        )
