"""Asterisk log normalizers: log lines (every prefix form) and security events -> Events."""

from sipguard.core.asterisk.linker import NormalizerStats
from sipguard.core.asterisk.normalizer import LogNormalizer
from sipguard.core.asterisk.security import parse_remote, parse_security_fields, security_event

__all__ = [
    "LogNormalizer",
    "NormalizerStats",
    "parse_remote",
    "parse_security_fields",
    "security_event",
]
