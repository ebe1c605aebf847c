"""What a probe reports: findings with verbatim evidence, and a note for every check it ran."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipguard.audit.model import Severity

__all__ = ["CheckNote", "Evidence", "ProbeFinding", "Severity"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """One request as sent and what came back, both verbatim (decoded as UTF-8, errors replaced)."""

    sent: str
    received: str

    def as_dict(self) -> dict[str, str]:
        return {"sent": self.sent, "received": self.received}


@dataclass(frozen=True, slots=True)
class ProbeFinding:
    id: str
    severity: Severity
    message: str
    fix: str
    evidence: tuple[Evidence, ...] = ()
    # the audit finding ids that describe the same weakness from the configuration side
    audit_ids: tuple[str, ...] = ()
    data: dict[str, object] = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "severity": self.severity.label,
            "message": self.message,
            "fix": self.fix,
            "audit_ids": list(self.audit_ids),
            "data": self.data,
            "evidence": [e.as_dict() for e in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class CheckNote:
    """A check that ran (or was skipped) and what it concluded, findings or not."""

    check: str
    status: str  # "finding", "ok", "skipped", "inconclusive"
    note: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "note": self.note}
