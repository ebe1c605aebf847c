"""Per-key bucket state machines: leaky, counter, trigger, distinct.

One `Bucket` holds the state of one grouping key for one rule. `add()` returns True exactly once
per crossing: after that the bucket stays "fired" until it goes idle (drained or quiet for a
window), so an attacker who keeps going raises one alert, not one per line. Every container in
here is bounded, so a key costs a fixed amount of memory whatever the attacker sends.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import MutableSequence

from sipguard.core.events import Event, Kind
from sipguard.detect.spec import BucketKind, RuleSpec

MAX_ACCOUNTS = 100  # accounts remembered per key, for the reason sentence
MAX_DISTINCT = 10_000  # distinct values remembered per key
_EMPTY: OrderedDict[str, float] = OrderedDict()  # shared, never written: non-distinct buckets
_NO_TIMES: deque[float] = deque(maxlen=0)  # shared, never written: non-counter buckets (a
# deque costs ~760 bytes however short; a distributed flood makes a bucket per source and rule)
# Enum members as module constants: `BucketKind.LEAKY` costs a lookup through the enum machinery
# (~0.1 us), and a distributed flood creates a bucket per source
_LEAKY = BucketKind.LEAKY
_COUNTER = BucketKind.COUNTER
_TRIGGER = BucketKind.TRIGGER
_DISTINCT = BucketKind.DISTINCT


class Bucket:
    __slots__ = (
        "accounts",
        "count",
        "evidence",
        "fired",
        "first",
        "kinds",
        "last",
        "level",
        "rule",
        "times",
        "values",
    )

    def __init__(self, rule: RuleSpec, now: float) -> None:
        # only the container this bucket kind uses is allocated: keys are many, memory is not
        kind = rule.bucket
        self._start(
            rule,
            now,
            deque(maxlen=rule.threshold) if kind is _COUNTER else _NO_TIMES,
            _EMPTY if kind is not _DISTINCT else OrderedDict(),
        )

    def _start(
        self,
        rule: RuleSpec,
        now: float,
        times: MutableSequence[float],
        values: OrderedDict[str, float],
    ) -> None:
        """The state every bucket starts with; the kind chooses the containers it uses. The
        subclasses call this directly, without the dispatch on the kind in __init__."""
        self.rule = rule
        self.first = now
        self.last = now
        self.count = 0
        self.level = 0.0
        self.fired = False
        self.kinds: dict[Kind, int] = {}
        self.accounts: set[str] = set()
        # the last rule.evidence events; a list, not a deque(maxlen): ~100 bytes, not ~760
        self.evidence: list[Event] = []
        self.times = times
        self.values = values

    def _reset(self, now: float) -> None:
        self.first = now
        self.count = 0
        self.level = 0.0
        self.fired = False
        self.kinds.clear()
        self.accounts.clear()
        self.evidence.clear()
        self.times.clear()
        self.values.clear()

    def _rate(self) -> float:
        return self.rule.threshold / self.rule.window

    def idle(self, now: float) -> bool:
        """True when the episode is over: a new event would start from nothing."""
        quiet = max(0.0, now - self.last)
        if self.rule.bucket is _LEAKY:
            return self.level - quiet * self._rate() <= 0.0
        return quiet > self.rule.window

    def add(self, event: Event, now: float, value: str | None) -> bool:
        """Count one event; True when this event makes the bucket cross its threshold."""
        last = self.last
        if now < last:
            now = last  # tolerate slightly out-of-order input (several files)
        crossed = self.step(now, last, value)
        self.last = now
        self.count += 1
        kinds = self.kinds
        kind = event.kind
        kinds[kind] = kinds.get(kind, 0) + 1
        account = event.account
        if account is not None and len(self.accounts) < MAX_ACCOUNTS:
            self.accounts.add(account)
        evidence = self.evidence
        evidence.append(event)
        if len(evidence) > self.rule.evidence:
            del evidence[0]
        if crossed and not self.fired:
            self.fired = True
            return True
        return False

    def step(self, now: float, last: float, value: str | None) -> bool:
        """The bucket kind's part of add(): starts a new episode when the last one is over,
        counts `now`, True when full. `now` is never before `last` here. Each bucket kind below
        has its own, without the dispatch on the kind (the engine calls it in its inner loop)."""
        if self.count and self.idle(now):
            self._reset(now)
        rule = self.rule
        if rule.bucket is _LEAKY:
            drained = self.level - (now - last) * self._rate()
            # capped at the threshold: after an attack stops the key drains within one window
            self.level = min(max(drained, 0.0) + 1.0, float(rule.threshold))
            # full when the next event would not fit: `threshold` events faster than the drain
            return self.level > rule.threshold - 1.0
        if rule.bucket is _COUNTER:
            self.times.append(now)
            return len(self.times) >= rule.threshold and now - self.times[0] <= rule.window
        if rule.bucket is _TRIGGER:
            return True
        return self._add_distinct(now, value) >= rule.threshold

    def _add_distinct(self, now: float, value: str | None) -> int:
        values = self.values
        if value is not None:
            values[value] = now
            values.move_to_end(value)
        horizon = now - self.rule.window
        count = len(values)
        while count:
            for oldest, seen in values.items():  # noqa: B007 - the first (oldest) entry
                break
            if seen >= horizon and count <= MAX_DISTINCT:
                break
            del values[oldest]
            count -= 1
        return count

    def distinct(self) -> int:
        return len(self.values)


class LeakyBucket(Bucket):
    __slots__ = ()

    def __init__(self, rule: RuleSpec, now: float) -> None:
        # Bucket.__init__ without the dispatch on the kind
        self._start(rule, now, _NO_TIMES, _EMPTY)

    def step(self, now: float, last: float, value: str | None) -> bool:
        rule = self.rule
        threshold = rule.threshold
        rate = threshold / rule.window  # as _rate()
        drained = self.level - (now - last) * rate
        if self.count and drained <= 0.0:  # idle(now), with now >= last
            self._reset(now)
            drained = 0.0 - (now - last) * rate
        self.level = level = min(max(drained, 0.0) + 1.0, float(threshold))
        return level > threshold - 1.0


class CounterBucket(Bucket):
    __slots__ = ()

    def __init__(self, rule: RuleSpec, now: float) -> None:
        # Bucket.__init__ without the dispatch on the kind, and `times` a list trimmed to the
        # threshold instead of a deque(maxlen): ~90 bytes and 0.4 us less for a key that sees
        # one event, as most do in a distributed flood
        self._start(rule, now, [], _EMPTY)

    def step(self, now: float, last: float, value: str | None) -> bool:
        rule = self.rule
        window = rule.window
        if self.count and now - last > window:  # idle(now)
            self._reset(now)
        elif self.fired:
            return True  # alerted this episode: its times are not read again before its end
        times = self.times
        times.append(now)
        threshold = rule.threshold
        if len(times) > threshold:
            del times[0]  # as deque(maxlen=threshold) would drop it
        return len(times) >= threshold and now - times[0] <= window


class TriggerBucket(Bucket):
    __slots__ = ()

    def __init__(self, rule: RuleSpec, now: float) -> None:
        # Bucket.__init__ without the dispatch on the kind
        self._start(rule, now, _NO_TIMES, _EMPTY)

    def step(self, now: float, last: float, value: str | None) -> bool:
        if self.count and now - last > self.rule.window:  # idle(now)
            self._reset(now)
        return True


class DistinctBucket(Bucket):
    __slots__ = ()

    def __init__(self, rule: RuleSpec, now: float) -> None:
        # Bucket.__init__ without the dispatch on the kind
        self._start(rule, now, _NO_TIMES, OrderedDict())

    def step(self, now: float, last: float, value: str | None) -> bool:
        if self.count and now - last > self.rule.window:  # idle(now)
            self._reset(now)
        elif self.fired:
            return True  # alerted this episode: its values are not read again before its end
        return self._add_distinct(now, value) >= self.rule.threshold


#: The bucket type for each bucket kind: `BUCKET_TYPES[rule.bucket](rule, now)`.
BUCKET_TYPES: dict[BucketKind, type[Bucket]] = {
    BucketKind.LEAKY: LeakyBucket,
    BucketKind.COUNTER: CounterBucket,
    BucketKind.TRIGGER: TriggerBucket,
    BucketKind.DISTINCT: DistinctBucket,
}
