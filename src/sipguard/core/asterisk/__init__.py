"""Asterisk log normalizers: log lines (every prefix form) and security events -> Events.

The names below are imported on first use: `sipguard scan` runs the C normalizer and would
otherwise compile the Python grammars' ~60 regexes at every start for a fallback it rarely needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sipguard.core.asterisk.linker import NormalizerStats
    from sipguard.core.asterisk.normalizer import LogNormalizer
    from sipguard.core.asterisk.security import parse_remote, parse_security_fields, security_event

_WHERE = {
    "LogNormalizer": "sipguard.core.asterisk.normalizer",
    "NormalizerStats": "sipguard.core.asterisk.linker",
    "parse_remote": "sipguard.core.asterisk.security",
    "parse_security_fields": "sipguard.core.asterisk.security",
    "security_event": "sipguard.core.asterisk.security",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "LogNormalizer",
    "NormalizerStats",
    "parse_remote",
    "parse_security_fields",
    "security_event",
]
