"""Per-account detector state and per-destination facts (plain data, no logic)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sipguard.fraud.classify import Destination
from sipguard.fraud.model import Call

MAX_EVIDENCE = 50  # uniqueids named by one hit
MAX_RANGES = 64  # short-call ranges tracked per account
MAX_CALL_SECONDS = 4 * 3600  # how far back a CDR (written at hangup) can have started


@dataclass(slots=True)
class AccountState:
    starts: list[tuple[float, str]] = field(default_factory=list)  # velocity window
    intervals: list[tuple[float, float, str]] = field(default_factory=list)
    active: dict[str, Call] = field(default_factory=dict)
    countries: set[str] = field(default_factory=set)
    day: int = -1
    spent: float = 0.0
    spend_calls: list[str] = field(default_factory=list)
    ranges: dict[str, list[tuple[float, str]]] = field(default_factory=dict)  # short calls
    last: float = 0.0
    ivs_cap: int = 8  # prune `intervals` beyond this (small lists keep thousands in cache)
    max_end: float = 0.0  # latest end among `intervals`: most calls overlap nothing
    limit: float = math.inf  # the account's daily spend limit


@dataclass(frozen=True, slots=True)
class DestInfo:
    """Everything the rules need to know about one dialled string, computed once."""

    dest: Destination
    rate: float  # cost per minute
    after_hours: bool  # in the after-hours rule's scopes
    risky: str  # why the destination itself is risky, "" if it is not
    range_key: str  # the number range, for short-call bursts
    external: bool  # national or international: the calls the rules look at
    country: str  # the country of an international destination, "" otherwise
    special: bool  # risky or in the after-hours scopes
