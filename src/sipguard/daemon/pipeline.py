"""The synchronous heart of the daemon: lines and events in, decisions out.

    LineBatch -> normalizer -> Event -> engine -> Alert -> policy -> Decision

No I/O here: the daemon feeds it from its sources and hands the decisions to the enforcer, and
bench/memory drives it in-process. The three stages are small protocols so a test can put any
of them in by hand.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from typing import Any, Protocol

from sipguard.core import Action, Alert, Decision, Event
from sipguard.daemon.logs import kv

log = logging.getLogger("sipguard.pipeline")


class Normalizer(Protocol):
    def feed_chunk(self, data: bytes, source: str, first_line_no: int) -> list[Event]: ...
    def accept(self, event: Event) -> list[Event]: ...
    def tick(self, now: float) -> list[Event]: ...


class Detector(Protocol):
    def feed(self, event: Event, now: float) -> list[Alert]: ...
    def expire(self, now: float) -> Any: ...


class Decider(Protocol):
    def decide(self, alert: Alert, now: float) -> Decision | None: ...


class Pipeline:
    def __init__(self, normalizer: Normalizer, engine: Detector, policy: Decider) -> None:
        self.normalizer = normalizer
        self.engine = engine
        self.policy = policy
        self.counts: Counter[str] = Counter()
        self.recent: deque[dict[str, Any]] = deque(maxlen=100)  # last alerts, for `status`
        # (account, rule) to lock through AMI, from profiles with lock_account; the daemon
        # drains it on its tick (bounded: a lock is idempotent, the newest matter)
        self.locks: deque[tuple[str, str]] = deque(maxlen=1000)

    def lines(self, data: bytes, source: str, first_line_no: int, now: float) -> list[Decision]:
        self.counts["batches"] += 1
        self.counts["bytes"] += len(data)
        return self._events(self.normalizer.feed_chunk(data, source, first_line_no), now)

    def event(self, event: Event, now: float) -> list[Decision]:
        """An event from elsewhere (AMI): through the normalizer so log+AMI count once."""
        self.counts["external_events"] += 1
        return self._events(self.normalizer.accept(event), now)

    def direct(self, event: Event, now: float) -> list[Decision]:
        """An event no log line can repeat (the packet sensor's): straight to the engine."""
        self.counts["direct_events"] += 1
        return self._events([event], now)

    def alert(self, alert: Alert, now: float) -> list[Decision]:
        """An alert raised outside the engine (the fraud watcher's): straight to the policy, so
        the allow-list, escalation and simulate mode apply to it as to any other."""
        self.counts["alerts"] += 1
        self.counts["external_alerts"] += 1
        decision = self.policy.decide(alert, now)
        self._record(alert, decision)
        return [decision] if decision is not None else []

    def tick(self, now: float) -> list[Decision]:
        decisions = self._events(self.normalizer.tick(now), now)
        self.engine.expire(now)
        return decisions

    def _events(self, events: list[Event], now: float) -> list[Decision]:
        out: list[Decision] = []
        for event in events:
            self.counts["events"] += 1
            for alert in self.engine.feed(event, now):
                self.counts["alerts"] += 1
                decision = self.policy.decide(alert, now)
                self._record(alert, decision)
                if decision is not None:
                    out.append(decision)
        return out

    def _record(self, alert: Alert, decision: Decision | None) -> None:
        lock = getattr(self.policy, "lock", None)
        account = lock(alert) if decision is None and lock is not None else None
        if account is not None:
            self.locks.append((account, alert.rule))
        action = decision.action.value if decision is not None else "none"
        self.counts[f"decisions_{action}"] += 1
        self.recent.append(
            {
                "time": alert.time,
                "rule": alert.rule,
                "key": alert.key,
                "reason": alert.reason,
                "action": action,
            }
        )
        if decision is None or decision.action is not Action.BAN:
            # an account under attack (no network to ban) is as loud as a ban: warning
            loud = decision is not None or alert.severity in ("high", "critical")
            kv(
                log,
                logging.WARNING if loud else logging.INFO,
                "alert",
                rule=alert.rule,
                key=alert.key,
                action=action,
                reason=alert.reason,
            )
