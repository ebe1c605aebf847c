"""Bounded, expiring state of the sensor: token buckets per source and method, known dialogs.

Both tables are plain dicts used in insertion order as an LRU: touching an entry moves it to the
end, and when a table is full the oldest entry goes. A flood from many spoofed sources therefore
costs memory up to the bound and no more. Time is passed in.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping


class TokenBuckets:
    """One bucket per key (source, method): `rate` tokens per second up to `burst`."""

    def __init__(self, rates: Mapping[str, tuple[float, float]], max_keys: int) -> None:
        self.rates = dict(rates)
        self.max_keys = max_keys
        self._state: dict[Hashable, list[float]] = {}  # key -> [tokens, last refill time]
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._state)

    def take(self, source: Hashable, method: str, now: float) -> bool:
        """Spend one token; False when the bucket is empty (the request is over the rate)."""
        spec = self.rates.get(method)
        if spec is None:
            return True
        rate, burst = spec
        key = (source, method)
        st = self._state.pop(key, None)
        if st is None:
            if len(self._state) >= self.max_keys:
                del self._state[next(iter(self._state))]
                self.evicted += 1
            st = [burst, now]
        else:
            st[0] = min(burst, st[0] + (now - st[1]) * rate) if now > st[1] else st[0]
            st[1] = max(now, st[1])
        self._state[key] = st
        if st[0] >= 1.0:
            st[0] -= 1.0
            return True
        return False

    def expire(self, now: float) -> int:
        """Forget buckets that have refilled completely: they hold no information."""
        gone = []
        for key, (tokens, last) in self._state.items():
            method = key[1] if isinstance(key, tuple) else ""
            rate, burst = self.rates.get(method, (1.0, 1.0))
            if tokens + (now - last) * rate >= burst:
                gone.append(key)
        for key in gone:
            del self._state[key]
        return len(gone)


class DialogTable:
    """Call-IDs of dialogs an accepted request (or the PBX itself) started, with their tags.

    A later message passes as in-dialog when its Call-ID is known and one of its From/To tags was
    seen in that dialog; a response passes when its Call-ID is known.
    """

    def __init__(self, max_dialogs: int, ttl: float) -> None:
        self.max_dialogs = max_dialogs
        self.ttl = ttl
        self._d: dict[str, tuple[set[str], float]] = {}  # call-id -> (tags, expires)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, call_id: object) -> bool:
        return call_id in self._d

    def add(self, call_id: str, tags: tuple[str | None, ...], now: float) -> None:
        entry = self._d.pop(call_id, None)
        if entry is None:
            if len(self._d) >= self.max_dialogs:
                del self._d[next(iter(self._d))]
                self.evicted += 1
            known: set[str] = set()
        else:
            known = entry[0]
        for tag in tags:
            if tag and len(known) < 16:
                known.add(tag)
        self._d[call_id] = (known, now + self.ttl)

    def known(self, call_id: str, now: float) -> bool:
        entry = self._d.get(call_id)
        return entry is not None and entry[1] > now

    def matches(self, call_id: str, tags: tuple[str | None, ...], now: float) -> bool:
        """True when the dialog is live and shares a tag with the message; refreshes it."""
        entry = self._d.get(call_id)
        if entry is None or entry[1] <= now:
            return False
        known = entry[0]
        for tag in tags:  # a loop, not any(genexpr): most packets of a call pass here
            if tag and tag in known:
                break
        else:
            return False
        self.add(call_id, tags, now)
        return True

    def expire(self, now: float) -> int:
        gone = [cid for cid, (_, exp) in self._d.items() if exp <= now]
        for cid in gone:
            del self._d[cid]
        return len(gone)
