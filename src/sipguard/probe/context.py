"""What every check gets: the SIP client, the ledger, the options, and where results go."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipguard.probe.ids import AUDIT_IDS
from sipguard.probe.ledger import Ledger
from sipguard.probe.model import CheckNote, Evidence, ProbeFinding, Severity
from sipguard.probe.session import SipClient, Target

__all__ = ["Options", "ProbeContext"]


@dataclass(frozen=True)
class Options:
    extensions: tuple[str, ...] = ("100", "101", "102", "200", "1000", "1001")
    numbers: tuple[str, ...] = ()  # outside-looking numbers; the package list when empty
    domain: str | None = None
    account: str | None = None
    password: str | None = None
    guess: int = 0  # passwords to try against `account` (opt-in, at most 1,000)
    protection: int = 0  # failures to send while watching for a block (opt-in)
    timing_margin: float = 0.25  # seconds: slower answers beyond this count as a difference
    ami_port: int = 5038
    http_port: int = 8088
    iax_port: int = 4569
    tls_port: int | None = None  # SIP-TLS port to judge the certificate of
    checks: tuple[str, ...] = ()  # only these (all when empty)


@dataclass
class ProbeContext:
    client: SipClient
    target: Target
    ledger: Ledger
    options: Options
    findings: list[ProbeFinding] = field(default_factory=list)
    notes: list[CheckNote] = field(default_factory=list)
    data: dict[str, object] = field(default_factory=dict)

    def add(
        self,
        fid: str,
        severity: Severity,
        message: str,
        fix: str,
        evidence: list[Evidence] | tuple[Evidence, ...] = (),
        **data: object,
    ) -> None:
        self.findings.append(
            ProbeFinding(fid, severity, message, fix, tuple(evidence), AUDIT_IDS[fid], data)
        )

    def note(self, check: str, status: str, note: str) -> None:
        self.notes.append(CheckNote(check, status, note))
