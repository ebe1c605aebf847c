"""The one normalize -> detect -> decide loop. `sipguard scan`, `rules test`, the sample runner,
bench/memory and the daemon all drive a `Pipeline`; none has a loop of its own.

    lines(bytes) --normalize--> events --detect--> alerts --decide--> decisions (returned)
    event(Event): an outside event (AMI) joins the normalizer's de-duplication and linking
    direct(Event): an event no log line repeats (the packet sensor's) goes straight to detection
    alert(Alert): an alert raised outside the engine (fraud) goes straight to the decider

Pure: no I/O, no clock. Every call takes `now`; `now=None` is replay (scan, samples, rules
test): each event is judged at its own time, and `latest` follows the newest event time so the
caller can expire idle state at that point. Observers (`on_event`, `on_alert`) let a report or a
log see every event and every alert with its decision without a second loop.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

from sipguard.core import Action, Alert, Decision, Event
from sipguard.pipeline.stages import Decider, Detector, Normalizer

EventObserver = Callable[[Event], None]
AlertObserver = Callable[[Alert, "Decision | None"], None]
RECENT = 100  # alerts kept for `sipguard status`
# the counter names, made once rather than per alert (a flood raises thousands)
_DECISION_KEYS = {a.value: f"decisions_{a.value}" for a in Action} | {"none": "decisions_none"}


class Pipeline:
    def __init__(
        self,
        normalizer: Normalizer,
        detector: Detector,
        decider: Decider,
        *,
        on_event: EventObserver | None = None,
        on_alert: AlertObserver | None = None,
    ) -> None:
        self.normalizer = normalizer
        self.detector = detector
        self.decider = decider
        self.on_event = on_event
        self.on_alert = on_alert
        self.counts: Counter[str] = Counter()
        self.recent: deque[dict[str, str | float]] = deque(maxlen=RECENT)
        self.latest = 0.0  # newest time an event was judged at

    def set_detector(self, detector: Detector) -> None:
        """New rules (a reload): the normalizer and the decider keep their state."""
        self.detector = detector

    # ---- entry points --------------------------------------------------------------------
    def normalize(self, data: bytes, source: str, first_line_no: int) -> list[Event]:
        """Stage one alone, for a caller that shows each line's events before judging them."""
        self.counts["batches"] += 1
        self.counts["bytes"] += len(data)
        return self.normalizer.feed_chunk(data, source, first_line_no)

    def lines(
        self, data: bytes, source: str, first_line_no: int, now: float | None
    ) -> list[Decision]:
        """Whole log lines (a last line without a newline is accepted)."""
        return self.events(self.normalize(data, source, first_line_no), now)

    def event(self, event: Event, now: float | None) -> list[Decision]:
        """An event from elsewhere (AMI): through the normalizer so log+AMI count once."""
        self.counts["external_events"] += 1
        return self.events(self.normalizer.accept(event), now)

    def direct(self, event: Event, now: float | None) -> list[Decision]:
        """An event no log line can repeat (the packet sensor's): straight to the detector."""
        self.counts["direct_events"] += 1
        return self.events([event], now)

    def alert(self, alert: Alert, now: float | None) -> list[Decision]:
        """An alert raised outside the engine (the fraud watcher's): straight to the decider, so
        the allow-list, escalation and simulate mode apply to it as to any other."""
        self.counts["external_alerts"] += 1
        return self._decide([alert], alert.time if now is None else now)

    def tick(self, now: float) -> list[Decision]:
        """Time passed: the normalizer releases what it held back, idle state expires."""
        decisions = self.events(self.normalizer.tick(now), now)
        self.detector.expire(now)
        return decisions

    def expire(self, now: float) -> int:
        return self.detector.expire(now)

    def flush(self, now: float | None) -> list[Decision]:
        """End of input: everything the normalizer still holds (scan, samples, rules test)."""
        return self.events(self.normalizer.flush(), now)

    # ---- the loop ------------------------------------------------------------------------
    def events(self, events: list[Event], now: float | None) -> list[Decision]:
        """Normalized events -> detector -> decider. The scan hot path: ~1 µs an event here."""
        if not events:
            return []
        self.counts["events"] += len(events)
        out: list[Decision] = []
        feed, on_event = self.detector.feed, self.on_event
        latest = self.latest
        for event in events:
            at = event.time if now is None else now
            if at > latest:
                latest = at
            if on_event is not None:
                on_event(event)
            alerts = feed(event, at)
            if alerts:
                out += self._decide(alerts, at)
        self.latest = latest
        return out

    def _decide(self, alerts: list[Alert], now: float) -> list[Decision]:
        counts, recent, decide, on_alert = (
            self.counts,
            self.recent,
            self.decider.decide,
            self.on_alert,
        )
        out: list[Decision] = []
        for alert in alerts:
            counts["alerts"] += 1
            decision = decide(alert, now)
            action = decision.action.value if decision is not None else "none"
            counts[_DECISION_KEYS.get(action) or f"decisions_{action}"] += 1
            recent.append(
                {
                    "time": alert.time,
                    "rule": alert.rule,
                    "key": alert.key,
                    "reason": alert.reason,
                    "action": action,
                }
            )
            if on_alert is not None:
                on_alert(alert, decision)
            if decision is not None:
                out.append(decision)
        return out
