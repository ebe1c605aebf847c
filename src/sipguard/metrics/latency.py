"""A fixed-bucket latency histogram cheap enough for the ban path (one bisect per ban).

Kept free of prometheus_client so the enforcer records into a plain object and the collector
turns it into a histogram family at scrape time (cumulative buckets, base unit seconds).
"""

from __future__ import annotations

from bisect import bisect_left

# line read -> address in the kernel set: a millisecond on an idle host, seconds when the
# kernel or the disk stalls; the buckets cover both ends
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Latency:
    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, seconds: float, n: int = 1) -> None:
        """`n` bans that took `seconds` (a batch of bans reaches the kernel together)."""
        self.counts[bisect_left(self.bounds, seconds)] += n
        self.sum += seconds * n
        self.count += n

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, cumulative count) pairs as Prometheus wants them, ending with +Inf."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += c
            out.append(("+Inf" if bound == float("inf") else repr(bound), total))
        return out

    def quantile(self, q: float) -> float:
        """An upper bound of the q-quantile (the bucket it falls in), for status and tests."""
        if not self.count:
            return 0.0
        rank, total = q * self.count, 0
        for bound, c in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += c
            if total >= rank:
                return bound
        return float("inf")
