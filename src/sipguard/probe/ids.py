"""Probe finding ids, and the audit ids that name the same weakness seen from the config side.

The audit ids are read-only here (audit owns them); a report that has both an audit run and a
probe run says "found in the configuration and confirmed from outside" through `confirmed`.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["AUDIT_IDS", "confirmed"]

#: probe id -> audit ids of the same weakness (empty: only visible from outside)
AUDIT_IDS: dict[str, tuple[str, ...]] = {
    "PROBE-SIP-OPTIONS": ("PJS-OPTIONS",),
    "PROBE-SIP-VERSION": (),
    "PROBE-SIP-ENUM": ("SIP-AUTHREJECT",),
    "PROBE-TOLL-CALL": ("DP-TOLLFRAUD", "SIP-ALLOWGUEST", "PJS-ANONYMOUS"),
    "PROBE-GUEST-CALL": ("SIP-ALLOWGUEST", "PJS-ANONYMOUS", "IAX-GUEST"),
    "PROBE-GUEST-REGISTER": ("PJS-NOAUTH",),
    "PROBE-SIP-DOMAIN": (),
    "PROBE-WEAK-SECRET": (
        "SEC-EMPTY",
        "SEC-COMMON",
        "SEC-SHORT",
        "SEC-CONTAINS-NAME",
        "SEC-GUESSABLE",
    ),
    "PROBE-AMI-OPEN": ("AMI-BIND", "AMI-NOACL"),
    "PROBE-HTTP-OPEN": ("HTTP-BIND", "AMI-HTTP"),
    "PROBE-IAX-OPEN": ("IAX-NOACL",),
    "PROBE-TLS-CERT": (),
    "PROBE-TLS-OLD": ("PJS-TRANSPORT",),
    "PROBE-NO-PROTECTION": (),
}


def confirmed(
    probe_ids: Iterable[str], audit_ids: Iterable[str]
) -> list[tuple[str, tuple[str, ...]]]:
    """(probe id, audit ids that also fired) for weaknesses both tools saw."""
    seen = set(audit_ids)
    out = []
    for pid in dict.fromkeys(probe_ids):
        both = tuple(a for a in AUDIT_IDS.get(pid, ()) if a in seen)
        if both:
            out.append((pid, both))
    return out
