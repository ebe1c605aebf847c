"""Output formats: text grouped by file (colour through rich on a terminal), JSON, SARIF 2.1.0."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from sipguard import __version__
from sipguard.audit.model import Finding, Severity

WEIGHTS = {
    Severity.CRITICAL: 25,
    Severity.HIGH: 10,
    Severity.MEDIUM: 4,
    Severity.LOW: 1,
    Severity.INFO: 0,
}
COLOURS = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}
SARIF_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.INFO: "note",
}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def score(findings: Sequence[Finding]) -> int:
    """100 for a clean tree, minus a weight per finding, never below 0."""
    return max(0, 100 - sum(WEIGHTS[f.severity] for f in findings))


def to_json(findings: Sequence[Finding]) -> str:
    doc = {"findings": [f.as_dict() for f in findings], "score": score(findings)}
    return json.dumps(doc, indent=2)


@dataclass(frozen=True, slots=True)
class SarifResult:
    """One result of any sipguard tool, in the terms SARIF needs (audit and probe share this)."""

    id: str
    severity: Severity
    message: str
    fix: str
    locations: list[dict[str, object]]
    properties: dict[str, object] = field(default_factory=dict)


def sarif_document(
    tool: str, results: Sequence[SarifResult], run_extra: dict[str, object] | None = None
) -> str:
    """A SARIF 2.1.0 log with one run: one rule per id, one result per finding."""
    rules: dict[str, dict[str, object]] = {}
    out: list[dict[str, object]] = []
    for r in results:
        rules.setdefault(
            r.id,
            {
                "id": r.id,
                "shortDescription": {"text": r.id},
                "help": {"text": r.fix},
                "defaultConfiguration": {"level": SARIF_LEVEL[r.severity]},
            },
        )
        out.append(
            {
                "ruleId": r.id,
                "level": SARIF_LEVEL[r.severity],
                "message": {"text": f"{r.message} Fix: {r.fix}"},
                "properties": {"severity": r.severity.label, **r.properties},
                "locations": r.locations,
            }
        )
    run: dict[str, object] = {
        "tool": {"driver": {"name": tool, "version": __version__, "rules": list(rules.values())}},
        "results": out,
        **(run_extra or {}),
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def to_sarif(findings: Sequence[Finding], base: str = "") -> str:
    results = [
        SarifResult(
            f.id,
            f.severity,
            f.message,
            f.fix,
            [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file, "uriBaseId": "CONFIGDIR"},
                        "region": {"startLine": max(1, f.line)},
                    },
                }
            ],
        )
        for f in findings
    ]
    extra: dict[str, object] = {"properties": {"score": score(findings)}}
    if base:
        uri = base if base.endswith("/") else base + "/"
        extra["originalUriBaseIds"] = {"CONFIGDIR": {"uri": "file://" + uri}}
    return sarif_document("sipguard-audit", results, extra)


def write_text(findings: Sequence[Finding], out: IO[str], colour: bool) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(
        file=out, force_terminal=colour, no_color=not colour, highlight=False, soft_wrap=True
    )
    current = None
    for f in findings:
        if f.file != current:
            current = f.file
            console.print(f"\n[bold]{escape(f.file)}[/bold]")
        sev = f"[{COLOURS[f.severity]}]{f.severity.label:<8}[/]"
        console.print(f"  {f.line:>5}  {sev} {escape(f.id)}: {escape(f.message)}")
        console.print(f"         [dim]fix:[/dim] {escape(f.fix)}")
    counts = {s: sum(1 for f in findings if f.severity == s) for s in Severity}
    summary = ", ".join(f"{n} {s.label}" for s, n in sorted(counts.items(), reverse=True) if n)
    console.print(f"\n{len(findings)} findings ({summary or 'none'}); score {score(findings)}/100")
