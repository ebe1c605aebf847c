"""What a fraud rule kind returns, and the contract every kind keeps.

Its own module so that every kind module (`fraudkinds`: per call and per address,
`fraudcounts`: calls counted in windows, `fraudledger`: per-account ledgers) uses one
`Finding` and the registry in `fraudkinds` can import them all without an import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sipguard.core.events import CallInfo, Event, Kind

MAX_EVIDENCE = 50  # uniqueids one finding keeps naming (the spend rule's day of calls)
# Live calls kept per account (the oldest goes): a hangup the source never reported must not
# grow the state without end.
MAX_LIVE_CALLS = 10_000


@dataclass(frozen=True, slots=True)
class Finding:
    """A fraud rule fired on an account: why, and the calls (uniqueids, oldest first)."""

    account: str
    reason: str
    calls: tuple[str, ...]
    ip: str = ""  # the address to act on, when the rule is about one


#: What a kind's typed entry returns when nothing fired: one shared empty tuple, so the hot
#: CDR loop allocates nothing for the millions of rows on which no rule fires.
NOTHING: tuple[Finding, ...] = ()
Found = tuple[Finding, ...]  # what a typed entry returns


class FraudKind(Protocol):
    """One fraud detector over call events (state bounded, dropped by `expire`)."""

    def feed(self, event: Event, now: float) -> list[Finding]: ...

    def expire(self, now: float) -> int: ...

    def state_size(self) -> int: ...


def dialled_call(event: Event) -> CallInfo | None:
    """The call of an event that starts one: a live dial, or a finished call's record (a CDR
    row is checked once, at its end, for what happened at its start too)."""
    call = event.call
    if call is None or not event.account:
        return None
    if event.kind is Kind.CALL_START or (event.kind is Kind.CALL_END and call.record):
        return call
    return None


K = TypeVar("K")
V = TypeVar("V")


def live_of(nested: dict[str, dict[str, V]], account: str) -> dict[str, V]:
    """The account's live calls (uid -> what a kind keeps), with room for one more."""
    live = nested.get(account)
    if live is None:
        live = nested[account] = {}
    elif len(live) >= MAX_LIVE_CALLS:
        del live[next(iter(live))]
    return live


def drop(nested: dict[str, dict[K, V]], key: str, inner: K) -> None:
    """Remove `nested[key][inner]`, then `nested[key]` when that left it empty."""
    entries = nested.get(key)
    if entries is not None:
        entries.pop(inner, None)
        if not entries:
            del nested[key]


def prune(nested: dict[str, dict[K, V]], stale: Callable[[V], bool]) -> int:
    """Remove the stale entries of every key, then the keys left empty; returns their count."""
    gone = 0
    for key in list(nested):
        entries = nested[key]
        for inner in [k for k, v in entries.items() if stale(v)]:
            del entries[inner]
        if not entries:
            del nested[key]
            gone += 1
    return gone


def number(params: Mapping[str, object], key: str, default: float) -> float:
    """A numeric parameter (validated at rule load: fraudrules.check_param), else `default`."""
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


__all__ = [
    "MAX_EVIDENCE",
    "MAX_LIVE_CALLS",
    "NOTHING",
    "Finding",
    "Found",
    "FraudKind",
    "dialled_call",
    "drop",
    "live_of",
    "number",
    "prune",
]
