"""All checks: each is a pure function `(tree) -> findings`."""

from __future__ import annotations

from collections.abc import Callable

from sipguard.audit.checks_inherited import check_general_defaults, check_rtp_overlap
from sipguard.audit.checks_pjsip import check_pjsip
from sipguard.audit.checks_services import (
    check_http,
    check_logger,
    check_manager,
    check_rtp,
    check_users,
    check_voicemail,
)
from sipguard.audit.checks_sip import check_iax, check_sip
from sipguard.audit.dialplan import check_dialplan
from sipguard.audit.model import Finding, Tree

Check = Callable[[Tree], list[Finding]]

CHECKS: tuple[Check, ...] = (
    check_sip,
    check_pjsip,
    check_iax,
    check_manager,
    check_http,
    check_users,
    check_voicemail,
    check_dialplan,
    check_rtp,
    check_logger,
    check_general_defaults,
    check_rtp_overlap,
)


def run_checks(tree: Tree) -> list[Finding]:
    """Parser findings plus every check's, de-duplicated, sorted by file, line, id."""
    found = set(tree.findings)
    for check in CHECKS:
        found.update(check(tree))
    return sorted(found, key=lambda f: (f.file, f.line, f.id, f.message))
