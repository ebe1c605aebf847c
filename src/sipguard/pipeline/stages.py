"""The three stages of the pipeline as protocols, so a reader (and mypy) can follow an event from
the bytes it came from to the decision it led to, and a test can put any stage in by hand.

    bytes --Normalizer--> Event --Detector--> Alert --Decider--> Decision

The real stages are `core.asterisk` (LogNormalizer, or the C FastNormalizer), `detect.Engine` and
`policy.Policy`; `Unjudged` is the decider of the offline tools that want alerts, not decisions.
"""

from __future__ import annotations

from typing import Protocol

from sipguard.core import Alert, Decision, Event
from sipguard.core.asterisk.linker import NormalizerStats
from sipguard.detect.accounts import AccountWatch
from sipguard.detect.engine import EngineStats


class Normalizer(Protocol):
    """Asterisk log text (whole lines) and outside events -> normalized, de-duplicated Events."""

    @property
    def stats(self) -> NormalizerStats: ...

    def feed_chunk(self, data: bytes, source: str, first_line_no: int) -> list[Event]: ...

    def accept(self, event: Event) -> list[Event]: ...

    def tick(self, now: float) -> list[Event]: ...

    def flush(self) -> list[Event]: ...


class Detector(Protocol):
    """Events -> alerts, by the rules' buckets; `expire` drops the state of idle keys."""

    @property
    def stats(self) -> EngineStats: ...

    @property
    def accounts(self) -> AccountWatch: ...  # who authenticated, which accounts are attacked

    def feed(self, event: Event, now: float) -> list[Alert]: ...

    def expire(self, now: float) -> int: ...

    def state_size(self) -> int: ...


class Decider(Protocol):
    """An alert -> what to do about it (None: nothing, e.g. allow-listed)."""

    def decide(self, alert: Alert, now: float) -> Decision | None: ...


class Unjudged:
    """The decider of `rules test` and the sample runner: they judge the rules, not a policy, so
    every alert passes with no decision."""

    def decide(self, alert: Alert, now: float) -> Decision | None:
        return None
