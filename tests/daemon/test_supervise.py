"""A crashing source is restarted with growing backoff and never takes the daemon down."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from sipguard.daemon.supervise import SourceState, supervise


def test_crashing_source_is_restarted_with_backoff():
    calls: list[float] = []

    async def flaky() -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) < 4:
            raise RuntimeError(f"crash {len(calls)}")
        await asyncio.sleep(3600)  # the fourth run stays up

    async def main() -> SourceState:
        state = SourceState("flaky")
        task = asyncio.create_task(supervise(state, flaky, min_backoff=0.02, max_backoff=0.05))
        while len(calls) < 4:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        assert state.running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return state

    state = asyncio.run(main())
    assert state.restarts == 3
    assert state.last_error == "RuntimeError: crash 3"
    assert not state.running
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.015 and gaps[1] >= 0.035 and gaps[2] >= 0.045  # 0.02, 0.04, cap 0.05


def test_a_source_that_ends_is_restarted_too():
    runs = 0

    async def ends() -> None:
        nonlocal runs
        runs += 1

    async def main() -> SourceState:
        state = SourceState("ends")
        task = asyncio.create_task(supervise(state, ends, min_backoff=0.01, max_backoff=0.01))
        while runs < 3:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return state

    state = asyncio.run(main())
    assert state.restarts >= 2 and state.last_error == "ended"
