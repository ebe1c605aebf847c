"""The live overview, made once for every viewer: 50 viewers cost what one does.

One `Snapshot` per push interval, encoded once (the JSON a page load gets and the server-sent
event every stream gets are the same bytes), made by one task however many page loads, streams
and scrapers ask at the same moment (single flight). Pushes are at most one per interval; a
viewer whose socket is slow skips the pushes it could not take (it always gets the newest).

Detection and bans come first: the daemon serves the dashboard in the event loop that parses
the logs and hands bans to the kernel, so the pusher makes its snapshot in a quiet moment (no
event, alert or ban for `QUIET` seconds) and waits for one at most half an interval: a burst
of attackers is parsed and banned before the overview is rebuilt, and the page is still never
more than about 1.5 intervals behind. The streams are then written to a slice at a time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

QUIET = 0.03  # seconds without detection activity that count as a quiet moment
SLICE = 10  # streams written to between two turns of the event loop (a line read waits for these)


@dataclass(frozen=True, slots=True)
class Snapshot:
    made: float  # monotonic time
    body: bytes  # the overview as JSON
    frame: bytes  # the same, as one server-sent event


def snapshot(overview: dict[str, Any], made: float) -> Snapshot:
    data = json.dumps(overview, separators=(",", ":"))
    return Snapshot(made, data.encode(), f"event: overview\ndata: {data}\n\n".encode())


class OverviewFeed:
    def __init__(
        self,
        make: Callable[[], Awaitable[dict[str, Any]]],
        interval: float,
        activity: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.make, self.interval, self.activity, self.clock = make, interval, activity, clock
        self.streams = 0
        self.made = 0  # snapshots made (bench/web and the tests read it)
        self._snap: Snapshot | None = None
        self._lock = asyncio.Lock()
        self._fresh = asyncio.Condition()

    async def latest(self, max_age: float | None = None) -> Snapshot:
        """The newest snapshot, made now if none is younger than `max_age` (an interval)."""
        limit = self.interval if max_age is None else max_age
        snap = self._snap
        if snap is not None and self.clock() - snap.made < limit:
            return snap
        async with self._lock:  # whoever waited here takes the one just made
            snap = self._snap
            if snap is None or self.clock() - snap.made >= limit:
                snap = self._snap = await self._make()
            return snap

    async def _make(self) -> Snapshot:
        try:
            overview = await self.make()
        except Exception as exc:  # a failing status must not end the pushes
            overview = {"error": str(exc)[:200]}
        self.made += 1
        await asyncio.sleep(0)  # the JSON encoding is one more step (see WebServer.overview)
        return snapshot(overview, self.clock())

    async def quiet(self) -> None:
        """Until detection has been idle for QUIET seconds, or half an interval has passed."""
        give_up = self.clock() + self.interval / 2
        seen = self.activity()
        while self.clock() < give_up:
            await asyncio.sleep(min(QUIET, self.interval / 4))
            now_seen = self.activity()
            if now_seen == seen:
                return
            seen = now_seen

    async def run(self) -> None:
        """The pusher: one snapshot an interval while anyone watches, told to every stream."""
        due = self.clock()
        while True:
            due = max(due + self.interval, self.clock())
            await asyncio.sleep(due - self.clock())
            if not self.streams:
                continue
            await self.quiet()
            await self.latest(self.interval / 2)  # older than that: it is this tick's to make
            await self._tell()

    async def _tell(self) -> None:
        """Wake the streams a slice at a time, with a turn of the event loop in between: what
        detection read meanwhile waits for one slice of socket writes, not for 50 or 200."""
        for _ in range(0, self.streams, SLICE):
            async with self._fresh:
                self._fresh.notify(SLICE)
            await asyncio.sleep(0)

    async def frames(self) -> AsyncGenerator[bytes, None]:
        """One stream's events: the newest snapshot at once, then each one pushed."""
        self.streams += 1
        try:
            last = await self.latest()
            yield last.frame
            while True:
                async with self._fresh:
                    await self._fresh.wait()
                snap = self._snap
                if snap is not None and snap is not last:
                    last = snap
                    yield snap.frame
        finally:
            self.streams -= 1
