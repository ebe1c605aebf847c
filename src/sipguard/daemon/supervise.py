"""Keeps a source running: a source that crashes (or ends) is restarted with exponential backoff,
and never takes the daemon down with it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sipguard.daemon.logs import kv

log = logging.getLogger("sipguard.supervise")


@dataclass
class SourceState:
    name: str
    running: bool = False
    restarts: int = 0
    last_error: str = ""
    started: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "running": self.running,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }


async def supervise(
    state: SourceState,
    run: Callable[[], Awaitable[None]],
    min_backoff: float = 1.0,
    max_backoff: float = 30.0,
    healthy_after: float = 60.0,
) -> None:
    """Run `run()` forever. Cancellation stops it; anything else is logged and retried."""
    backoff = min_backoff
    while True:
        state.running, state.started = True, time.monotonic()
        try:
            await run()
            state.last_error = "ended"
        except asyncio.CancelledError:
            state.running = False
            raise
        except Exception as exc:
            state.last_error = f"{type(exc).__name__}: {exc}"[:300]
        state.running = False
        if time.monotonic() - state.started > healthy_after:
            backoff = min_backoff  # it ran fine for a while: this is a fresh failure
        state.restarts += 1
        kv(
            log,
            logging.WARNING,
            "source stopped, restarting",
            source=state.name,
            error=state.last_error,
            retry_in=f"{backoff:g}s",
        )
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)
