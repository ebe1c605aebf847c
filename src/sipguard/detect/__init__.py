"""The rule engine: rule specs from plain data, bucket state machines, bounded per-key state.

Pure: stdlib and `sipguard.core` only, no I/O, time passed in.
"""

from sipguard.detect.durations import format_duration, parse_duration
from sipguard.detect.engine import (
    DEFAULT_MAX_KEYS,
    Engine,
    EngineStats,
    network_key,
    source_key,
)
from sipguard.detect.matchers import FIELDS, Matcher, RuleError, build_matcher
from sipguard.detect.spec import BucketKind, GroupBy, RuleSpec, rule_from_dict

__all__ = [
    "DEFAULT_MAX_KEYS",
    "FIELDS",
    "BucketKind",
    "Engine",
    "EngineStats",
    "GroupBy",
    "Matcher",
    "RuleError",
    "RuleSpec",
    "build_matcher",
    "format_duration",
    "network_key",
    "parse_duration",
    "rule_from_dict",
    "source_key",
]
