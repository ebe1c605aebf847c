"""The live overview's feed (sipguard.web.feed): one snapshot for every viewer, made once however
many ask at the same moment, and made in a quiet moment of detection (bans come first)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sipguard.web.feed import QUIET, SLICE, OverviewFeed


class Maker:
    """The overview maker: counts its calls; optionally slow (an await, like `status`)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return {"n": self.calls}


def test_one_snapshot_for_everyone_asking_at_once_then_one_an_interval() -> None:
    async def main() -> None:
        make = Maker(delay=0.02)
        feed = OverviewFeed(make, interval=0.2)
        snaps = await asyncio.gather(*(feed.latest() for _ in range(50)))
        assert make.calls == 1 and feed.made == 1
        assert all(s is snaps[0] for s in snaps)  # the very same bytes for all
        assert json.loads(snaps[0].body) == {"n": 1}
        assert snaps[0].frame == b'event: overview\ndata: {"n":1}\n\n'
        assert (await feed.latest()) is snaps[0] and make.calls == 1  # fresh: no new one
        await asyncio.sleep(0.2)
        assert json.loads((await feed.latest()).body) == {"n": 2}

    asyncio.run(main())


def test_a_failing_maker_is_an_error_snapshot_not_a_dead_feed() -> None:
    async def broken() -> dict[str, Any]:
        raise RuntimeError("status failed")

    async def main() -> None:
        feed = OverviewFeed(broken, interval=0.1)
        assert json.loads((await feed.latest()).body) == {"error": "status failed"}

    asyncio.run(main())


def test_the_snapshot_waits_for_a_quiet_moment_but_not_longer_than_half_an_interval() -> None:
    async def main() -> None:
        seen = {"n": 0, "on": True}

        async def detection() -> None:  # an event every 5 ms while "on"
            while True:
                await asyncio.sleep(0.005)
                seen["n"] += seen["on"]

        interval = 0.4
        feed = OverviewFeed(Maker(), interval, lambda: seen["n"])
        task = asyncio.create_task(detection())
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await feed.quiet()
        busy = loop.time() - t0
        assert interval / 2 - 0.01 <= busy <= interval / 2 + 0.05, busy
        seen["on"] = False
        t0 = loop.time()
        await feed.quiet()
        idle = loop.time() - t0
        assert QUIET - 0.005 <= idle <= 3 * QUIET, idle
        task.cancel()

    asyncio.run(main())


def test_streams_share_each_push_written_a_slice_at_a_time() -> None:
    async def main() -> None:
        make = Maker()
        interval = 0.1
        feed = OverviewFeed(make, interval)
        got: list[list[bytes]] = [[] for _ in range(25)]
        steps: list[int] = []  # frames written between two turns of detection's task

        async def detection() -> None:  # runs at every turn of the loop, like a line read
            seen = sum(map(len, got))
            while True:
                await asyncio.sleep(0)
                now = sum(map(len, got))
                if now != seen:
                    steps.append(now - seen)
                seen = now

        async def viewer(i: int) -> None:
            async for frame in feed.frames():
                got[i].append(frame)

        tasks = [asyncio.create_task(feed.run())]
        tasks += [asyncio.create_task(viewer(i)) for i in range(25)]
        await asyncio.sleep(0.03)
        assert feed.streams == 25 and make.calls == 1  # the first frame: one snapshot for all
        tasks.append(asyncio.create_task(detection()))
        await asyncio.sleep(interval * 5)
        calls = make.calls
        assert 4 <= calls <= 7, calls  # one an interval, not one per viewer
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert feed.streams == 0
        # each viewer got every snapshot once, as the very same frame objects
        for frames in got:
            assert len(frames) >= calls - 1
            assert all(a is b for a, b in zip(frames, got[0], strict=True))
        # each push reached the 25 streams in slices, detection ran between them
        assert steps and max(steps) == SLICE < 25, steps

    asyncio.run(main())
