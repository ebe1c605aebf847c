"""Sans-I/O vocabulary: events, alerts, decisions, clock, and parsers. Stdlib only."""

from sipguard.core.alerts import Action, Alert, Decision, Network
from sipguard.core.clock import Clock, FakeClock, SystemClock
from sipguard.core.events import ATTACK_KINDS, NO_ORIGIN, Event, IPAddress, Kind, Origin, Service

__all__ = [
    "ATTACK_KINDS",
    "NO_ORIGIN",
    "Action",
    "Alert",
    "Clock",
    "Decision",
    "Event",
    "FakeClock",
    "IPAddress",
    "Kind",
    "Network",
    "Origin",
    "Service",
    "SystemClock",
]
