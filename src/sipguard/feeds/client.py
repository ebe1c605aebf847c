"""One refresh of one feed, per protocol. Blocking (HTTP through an injected getter), so the
daemon runs it in a thread; the state it updates is pure (state.py).

A refresh either succeeds (the state holds the new entries) or raises: FeedError (keep the last
good entries, retry soon) or RateLimited (keep them, wait as long as the server asked)."""

from __future__ import annotations

from sipguard.feeds.config import FeedConfig
from sipguard.feeds.http import Answer, Getter, http_get, read_file
from sipguard.feeds.parse import FeedError, parse_apiban, parse_crowdsec, parse_plain
from sipguard.feeds.state import APIBAN_LIFE, FeedState
from sipguard.policy.blocklist import Prefix

MAX_PAGES = 200  # APIBAN sends 250 addresses a page: 50,000 is far more than a week holds
MAX_RETRY_AFTER = 3600.0


class RateLimited(FeedError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited (429), retry in {retry_after:g}s")
        self.retry_after = retry_after


def retry_after(answer: Answer, default: float) -> float:
    value = answer.header("retry-after").strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    return default


def _check(answer: Answer, cfg: FeedConfig, ok: tuple[int, ...] = (200,)) -> None:
    if answer.status == 429:
        raise RateLimited(retry_after(answer, cfg.interval))
    if answer.status not in ok:
        raise FeedError(f"HTTP {answer.status}")


def refresh(
    cfg: FeedConfig, state: FeedState, key: str, now: float, get: Getter = http_get
) -> None:
    """Bring `state` up to date with the feed (see the module's docstring for failures)."""
    state.last_attempt = now
    state.expire(now)
    if cfg.kind == "plain":
        _plain(cfg, state, get)
    elif cfg.kind == "apiban":
        _apiban(cfg, state, key, now, get)
    else:
        _crowdsec(cfg, state, key, now, get)


def _plain(cfg: FeedConfig, state: FeedState, get: Getter) -> None:
    if cfg.file:
        body = read_file(cfg.file, cfg.max_bytes)
    else:
        headers = {}
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        answer = get(cfg.url, headers, cfg.timeout, cfg.max_bytes)
        if answer.status == 304:
            state.count("not-modified")
            return
        _check(answer, cfg)
        body = answer.body
    parsed = parse_plain(body, cfg.max_entries)
    state.count("invalid", parsed.invalid)
    state.count("over-cap", parsed.over_cap)
    state.replace(dict.fromkeys(parsed.networks))
    if not cfg.file:  # validators only once the body proved usable
        state.etag, state.last_modified = answer.header("etag"), answer.header("last-modified")


def _apiban(cfg: FeedConfig, state: FeedState, key: str, now: float, get: Getter) -> None:
    base = f"{cfg.url.rstrip('/')}/api/{key}/banned"
    for _ in range(MAX_PAGES):
        url = f"{base}/{state.cursor}" if state.cursor else base
        answer = get(url, {}, cfg.timeout, cfg.max_bytes)
        if answer.status == 429:
            raise RateLimited(retry_after(answer, cfg.interval))
        if answer.status not in (200, 400):
            raise FeedError(f"HTTP {answer.status}")
        try:
            page = parse_apiban(answer.body, cfg.max_entries - len(state.entries))
        except FeedError:
            if answer.status == 400:  # a 400 that is not "no new bans": a bad key or cursor
                raise FeedError("HTTP 400") from None
            raise
        if page.no_new:
            state.count("no-new-bans")
            return
        if answer.status != 200:
            raise FeedError(f"HTTP {answer.status}")
        state.count("invalid", page.invalid)
        state.count("over-cap", page.over_cap)
        state.extend(page.networks, now + APIBAN_LIFE)
        if page.cursor is None or page.cursor == state.cursor or not page.networks:
            state.cursor = page.cursor or state.cursor
            return
        state.cursor = page.cursor
    state.count("page-limit")


def _crowdsec(cfg: FeedConfig, state: FeedState, key: str, now: float, get: Getter) -> None:
    startup = not state.synced
    url = f"{cfg.url.rstrip('/')}/v1/decisions/stream?startup={'true' if startup else 'false'}"
    # a lost delta would be lost for good: after any failure, the next pull starts over
    state.synced = False
    answer = get(url, {"X-Api-Key": key}, cfg.timeout, cfg.max_bytes)
    _check(answer, cfg)
    delta = parse_crowdsec(answer.body, cfg.max_entries)
    state.count("invalid", delta.invalid)
    state.count("over-cap", delta.over_cap)
    state.count("skipped", delta.skipped)
    if startup:
        entries: dict[Prefix, float | None] = {}
        for net, seconds in delta.new:
            entries[net] = max(now + seconds, entries.get(net) or 0.0)
        state.replace(entries)
    else:
        state.drop(delta.deleted)
        for net, seconds in delta.new:
            state.extend([net], now + seconds)
    state.synced = True
