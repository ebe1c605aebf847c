"""Alerts to decisions: profiles, allow-list, escalation, simulation. Pure (core, detect only).

The set algebra of reconcilers (kernel sets, fleet) is `sipguard.core.reconcile`: the adapters
that use it may import only core.
"""

from sipguard.detect.durations import format_duration, parse_duration
from sipguard.policy.decide import AllowList, Policy
from sipguard.policy.history import OffenceHistory
from sipguard.policy.profiles import (
    DEFAULT_PROFILES,
    PolicyError,
    Profile,
    profile_from_dict,
    profiles_from_dict,
)

__all__ = [
    "DEFAULT_PROFILES",
    "AllowList",
    "OffenceHistory",
    "Policy",
    "PolicyError",
    "Profile",
    "format_duration",
    "parse_duration",
    "profile_from_dict",
    "profiles_from_dict",
]
