"""Probe output: plain text, JSON (with every send, verbatim), SARIF (audit's writer)."""

from __future__ import annotations

import json
from typing import IO

from sipguard.audit.model import Severity
from sipguard.audit.report import SarifResult, sarif_document
from sipguard.probe.runner import ProbeResult

__all__ = ["exit_status", "to_json", "to_sarif", "write_text"]


def _target(result: ProbeResult) -> str:
    t = result.target
    return f"sip:{t.hostport};transport={t.transport}"


def to_dict(result: ProbeResult) -> dict[str, object]:
    return {
        "target": _target(result),
        "domain": result.target.domain,
        "findings": [f.as_dict() for f in result.findings],
        "checks": [n.as_dict() for n in result.notes],
        "data": result.data,
        "stopped": result.stopped,
        "elapsed": round(result.elapsed, 3),
        "sent_count": len(result.sent),
        "sent": [s.as_dict() for s in result.sent],
    }


def to_json(result: ProbeResult) -> str:
    return json.dumps(to_dict(result), indent=2)


def to_sarif(result: ProbeResult) -> str:
    where: list[dict[str, object]] = [
        {"physicalLocation": {"artifactLocation": {"uri": _target(result)}}}
    ]
    items = [
        SarifResult(
            f.id,
            f.severity,
            f.message,
            f.fix,
            where,
            {"auditIds": list(f.audit_ids), "evidence": [e.as_dict() for e in f.evidence]},
        )
        for f in result.findings
    ]
    extra: dict[str, object] = {"properties": {"sentCount": len(result.sent)}}
    return sarif_document("sipguard-probe", items, extra)


def write_text(result: ProbeResult, out: IO[str], evidence: bool = False) -> None:
    out.write(f"probe of {_target(result)}: {len(result.sent)} sends in {result.elapsed:.1f}s\n")
    for f in sorted(result.findings, key=lambda f: -f.severity):
        also = f" (audit: {', '.join(f.audit_ids)})" if f.audit_ids else ""
        out.write(f"  {f.severity.label:<8} {f.id}{also}: {f.message}\n")
        out.write(f"           fix: {f.fix}\n")
        for e in f.evidence if evidence else ():
            out.write("           sent:\n" + _indent(e.sent) + "           received:\n")
            out.write(_indent(e.received))
    for n in result.notes:
        out.write(f"  {n.status:<8} {n.check}: {n.note}\n")
    if result.stopped:
        out.write(f"stopped early: {result.stopped}\n")
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in Severity}
    summary = ", ".join(f"{n} {s.label}" for s, n in sorted(counts.items(), reverse=True) if n)
    out.write(f"{len(result.findings)} findings ({summary or 'none'})\n")


def _indent(text: str) -> str:
    return "".join(f"             {line}\n" for line in text.splitlines())


def exit_status(result: ProbeResult, fail_on: str | None) -> int:
    if fail_on is None:
        return 0
    threshold = Severity.parse(fail_on)
    return 1 if any(f.severity >= threshold for f in result.findings) else 0
