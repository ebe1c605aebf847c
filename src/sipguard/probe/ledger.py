"""Bounds on what a probe sends, and the exact record of it.

Every packet or stream write goes through `Ledger.admit` first: it waits for the rate limit,
refuses once the total or the time budget is spent (`BudgetSpent`), and records the bytes
verbatim. The JSON report lists `Ledger.sent`, so its length is the number of sends made.
Time and sleeping are injected, so the bounds are tested without waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sipguard.probe.transport import Transport

__all__ = ["Budget", "BudgetSpent", "Ledger", "MeteredTransport", "Sent"]

MAX_PACKETS = 5000  # the ceiling any configuration can raise the budget to


class BudgetSpent(Exception):
    """The probe reached one of its bounds; the checks stop and the report says which."""


@dataclass(frozen=True, slots=True)
class Budget:
    packets: int = 1000  # total sends (datagrams, stream writes, connections)
    rate: float = 20.0  # sends per second at most
    seconds: float = 300.0  # wall-clock time for the whole probe

    def __post_init__(self) -> None:
        if not 1 <= self.packets <= MAX_PACKETS:
            raise ValueError(f"packet budget must be 1..{MAX_PACKETS}")
        if not 0 < self.rate <= 1000:
            raise ValueError("rate must be in (0, 1000] per second")
        if not 0 < self.seconds <= 3600:
            raise ValueError("time budget must be in (0, 3600] seconds")


@dataclass(frozen=True, slots=True)
class Sent:
    seq: int
    at: float  # seconds since the probe began
    channel: str  # "sip/udp", "sip/tls", "ami/tcp", "iax2/udp", ...
    target: str  # host:port
    data: str  # verbatim ("hex:..." when not UTF-8); "" for a bare TCP connect

    def as_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "at": round(self.at, 3),
            "channel": self.channel,
            "target": self.target,
            "data": self.data,
        }


@dataclass
class Ledger:
    budget: Budget
    now: Callable[[], float]
    sleep: Callable[[float], None]
    sent: list[Sent] = field(default_factory=list)
    start: float = -1.0
    _last: float = -1e9

    def __post_init__(self) -> None:
        if self.start < 0:
            self.start = self.now()

    def elapsed(self) -> float:
        return self.now() - self.start

    def time_left(self) -> float:
        return self.budget.seconds - self.elapsed()

    def admit(self, channel: str, target: str, data: bytes) -> None:
        if len(self.sent) >= self.budget.packets:
            raise BudgetSpent(f"packet budget of {self.budget.packets} spent")
        wait = self._last + 1.0 / self.budget.rate - self.now()
        if wait > 0:
            self.sleep(wait)
        if self.time_left() <= 0:
            raise BudgetSpent(f"time budget of {self.budget.seconds:g}s spent")
        self._last = self.now()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = "hex:" + data.hex()  # binary protocols (IAX2) stay exact
        self.sent.append(Sent(len(self.sent) + 1, self.elapsed(), channel, target, text))

    def count(self, channel: str) -> int:
        return sum(1 for s in self.sent if s.channel == channel)


class MeteredTransport:
    """A Transport whose sends are admitted (and recorded) by a Ledger."""

    def __init__(self, inner: Transport, ledger: Ledger, target: str) -> None:
        self.inner = inner
        self.ledger = ledger
        self.target = target
        self.name = inner.name
        self.local = inner.local
        self.channel = f"sip/{inner.name}"

    def send(self, data: bytes) -> None:
        self.ledger.admit(self.channel, self.target, data)
        self.inner.send(data)

    def recv(self, timeout: float) -> bytes | None:
        return self.inner.recv(min(timeout, max(0.0, self.ledger.time_left())))

    def close(self) -> None:
        self.inner.close()
