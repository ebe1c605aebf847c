"""Delivery through apprise: one Apprise object per route, its blocking `notify` on a thread
of its own (a mail server that hangs holds that thread, never the event loop, the store's
thread or the default executor)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sipguard.notify.config import Route
from sipguard.notify.notifier import Message, Sender

log = logging.getLogger("sipguard.notify")
SEND_TIMEOUT = 15.0  # seconds apprise may spend on one route (connect + read)
_TYPES = {"low": "info", "medium": "warning", "high": "failure", "critical": "failure"}


def apprise_sender(routes: Iterable[Route] = (), timeout: float = SEND_TIMEOUT) -> Sender:
    """`routes` are set up at once: apprise loads its plugins on first use, seconds of CPU
    that would otherwise run (holding the GIL) while the daemon bans its first attackers."""
    import apprise

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sipguard-notify")
    clients: dict[Route, Any] = {}

    def client(route: Route) -> Any:
        ap = clients.get(route)
        if ap is None:
            ap = apprise.Apprise()
            for url in route.urls:
                if not ap.add(url):
                    log.error("notify: apprise does not understand a URL of this route")
            clients[route] = ap
        return ap

    def notify(route: Route, message: Message) -> bool:
        result = client(route).notify(
            body=message.body,
            title=message.title,
            notify_type=_TYPES.get(message.severity, "info"),
            timeout=timeout,
        )
        return bool(result)

    for route in routes:
        client(route)

    async def send(route: Route, message: Message) -> bool:
        loop = asyncio.get_running_loop()
        # past the timeout the thread may still be stuck: the message counts as failed and
        # the next one waits its turn behind it (the queue is bounded; drops are counted)
        return await asyncio.wait_for(
            loop.run_in_executor(pool, notify, route, message), timeout + 5
        )

    return send
