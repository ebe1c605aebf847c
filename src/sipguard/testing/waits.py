"""Waiting in async tests for something another task or process does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def until(cond: Callable[[], Any], timeout: float = 10.0) -> Any:
    """The first truthy value of `cond()` (run in a thread: it may block, e.g. a control
    request), polled every 50 ms; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(cond)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
