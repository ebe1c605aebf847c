"""Blocklist feeds in the daemon: each `[[feeds]]` entry refreshed on its schedule, its entries
minus the allow-list loaded atomically into its own kernel set (origin "blocklist:NAME").

Fetching and parsing run in a worker thread (feeds.client, blocking HTTP); the kernel work goes
through the enforcer's I/O thread like every other firewall call (or over the privsep channel).
A failed refresh keeps the last good entries in the set; a 429 waits as long as the server asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.core import Network
from sipguard.daemon.build import config_file
from sipguard.daemon.enforcer import Enforcer
from sipguard.daemon.logs import kv
from sipguard.feeds.client import RateLimited, refresh
from sipguard.feeds.config import FeedConfig, parse_feeds
from sipguard.feeds.http import Getter, http_get
from sipguard.feeds.parse import FeedError
from sipguard.feeds.state import FeedState
from sipguard.policy.blocklist import prefix_text, subtract

log = logging.getLogger("sipguard.feeds")
RETRY = 60.0  # seconds before retrying a failed refresh (at most the feed's interval)
MAX_KEY = 4096


def build_feeds(settings: Settings) -> list[FeedConfig]:
    return parse_feeds(settings.feeds, settings.origins.get("feeds") or config_file(settings))


def read_key(cfg: FeedConfig, file: str) -> str:
    if not cfg.key_file:
        return ""
    try:
        with open(cfg.key_file, encoding="utf-8") as fh:
            key = fh.read(MAX_KEY + 1).strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(file, f"feeds.{cfg.name}.key_file", f"{cfg.key_file}: {reason}") from None
    if not key or len(key) > MAX_KEY or not key.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(file, f"feeds.{cfg.name}.key_file", "not one key of letters and digits")
    return key


class Feeds:
    def __init__(
        self,
        enforcer: Enforcer,
        allowed: Callable[[], Sequence[Network]],
        get: Getter = http_get,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.enforcer = enforcer
        self._allowed = allowed
        self._get = get
        self._clock = clock
        self.configs: dict[str, FeedConfig] = {}
        self.keys: dict[str, str] = {}
        self.states: dict[str, FeedState] = {}
        self.loaded: dict[str, int] = {}  # feed -> generation in the kernel (-1: reload)
        self.in_kernel: dict[str, int] = {}  # feed -> elements in its set
        self._wake = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}
        self._had_feeds = False

    async def configure(self, configs: Sequence[FeedConfig], keys: dict[str, str]) -> None:
        """(Re)build the feed sets; a feed whose settings did not change keeps its state."""
        new = {c.name: c for c in configs if c.enabled}
        for name in list(self.states):
            if name not in new or new[name] != self.configs.get(name):
                self.states.pop(name)
                self.loaded.pop(name, None)
                self.in_kernel.pop(name, None)
        self.configs, self.keys = new, keys
        for name in new:
            self.states.setdefault(name, FeedState(name))
            self._locks.setdefault(name, asyncio.Lock())
        if new or self._had_feeds:  # no [[feeds]] ever: the kernel gets no feeds chain
            await self.enforcer.io(self.enforcer.firewall.set_feeds, list(new))
        self._had_feeds = self._had_feeds or bool(new)
        self._wake.set()

    def allow_changed(self) -> None:
        """A new allow-list: every set is loaded again without what is now allowed."""
        self.loaded = dict.fromkeys(self.loaded, -1)
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()  # before the work: a wake-up during it is not lost
            now = self._clock()
            due = [n for n, s in self.states.items() if s.next_at <= now]
            for name in due:
                await self.refresh(name)
            for name in list(self.loaded):
                if self.loaded[name] == -1:
                    await self._load(name)
            pending = [s.next_at for s in self.states.values()]
            wait = min(pending) - self._clock() if pending else 3600.0
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.05, min(wait, 60.0)))
            except TimeoutError:
                pass

    async def refresh(self, name: str) -> None:
        """Fetch one feed now; on success its set is reloaded when the entries changed."""
        cfg = self.configs[name]
        async with self._locks[name]:
            now = self._clock()
            # the thread works on a copy: `status` reads the state on the loop meanwhile
            state = self.states[name].copy()
            try:
                await asyncio.to_thread(
                    refresh, cfg, state, self.keys.get(name, ""), now, self._get
                )
            except RateLimited as exc:
                state.count("rate-limited")
                state.failed(now, str(exc), max(exc.retry_after, 1.0))
                kv(log, logging.WARNING, "feed rate limited", feed=name, retry=exc.retry_after)
            except FeedError as exc:
                state.failed(now, str(exc), min(cfg.interval, RETRY))
                kv(
                    log,
                    logging.WARNING,
                    "feed refresh failed, keeping the last list",
                    feed=name,
                    error=exc,
                    entries=len(state.entries),
                )
            except Exception as exc:  # a bug must not stop the daemon's TaskGroup
                state.failed(now, f"internal error: {exc!r}", min(cfg.interval, RETRY))
                kv(log, logging.ERROR, "feed refresh crashed", feed=name, error=repr(exc))
            else:
                state.succeeded(now, cfg.interval)
            if self.configs.get(name) != cfg:
                return  # reconfigured meanwhile: this result belongs to the old feed
            self.states[name] = state  # kept on failure too: pages already read stay
            if self.loaded.get(name) != state.generation:
                await self._load(name)

    async def _load(self, name: str) -> None:
        state = self.states.get(name)
        if state is None:
            return
        gen = state.generation
        entries = subtract(state.networks(self._clock()), list(self._allowed()))
        texts = [prefix_text(p) for p in entries]
        try:
            count = await self.enforcer.io(self.enforcer.firewall.load_feed, name, texts)
        except Exception as exc:  # the kernel refused: try again with the next refresh
            state.count("kernel-errors")
            state.last_error = f"kernel: {str(exc)[:250]}"
            kv(log, logging.ERROR, "feed set load failed", feed=name, error=exc)
            return
        self.loaded[name] = gen
        self.in_kernel[name] = count
        kv(log, logging.INFO, "feed loaded", feed=name, origin=f"blocklist:{name}", entries=count)

    async def refresh_all(self, name: str | None = None) -> list[dict[str, object]]:
        names = [name] if name else list(self.configs)
        for n in names:
            await self.refresh(n)
        return [r for r in self.status() if r["name"] in names]

    def status(self) -> list[dict[str, object]]:
        now = self._clock()
        out = []
        for name, state in self.states.items():
            cfg = self.configs[name]
            out.append(
                {
                    **state.view(now),
                    "kind": cfg.kind,
                    "origin": cfg.origin,
                    "source": cfg.file or cfg.url,  # APIBAN's key is added to the path later
                    "in_kernel": self.in_kernel.get(name, 0),
                    "loaded": self.loaded.get(name) == state.generation,
                }
            )
        return out
