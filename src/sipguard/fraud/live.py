"""The live call tracker: AMI events -> call events (`core.calls`) -> the fraud rules.

`core.calls.CallNormalizer` turns AMI events into CALL_START / CALL_ANSWER / CALL_END and
AUTH_SUCCESS events (sans-I/O, bounded); `on_event` runs an event through the engine, keeping
the `Call` of each live call between its dial and its hangup (the engine's running costs and
concurrency read it). The time is the event's own.
"""

from __future__ import annotations

from sipguard.core.calls import MAX_CHANNELS, CallNormalizer, Get
from sipguard.core.events import Event, Kind
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.model import Call, Hit


class LiveTracker:
    def __init__(self, engine: FraudEngine) -> None:
        self.engine = engine
        self.normalizer = CallNormalizer()
        self.calls: dict[str, Call] = {}  # live calls by uid, from dial to hangup
        self.last_ip: dict[str, str] = {}  # account -> last address it authenticated from
        self.channels = self.normalizer.channels
        self.seen_uids = self.normalizer.seen_uids  # calls checked live (a CDR of them is skipped)
        self.counters = self.normalizer.counters

    def feed(self, name: str, get: Get, now: float) -> list[Hit]:
        """One AMI event; returns the rule hits it caused."""
        return [
            hit for event in self.normalizer.feed(name, get, now) for hit in self.on_event(event)
        ]

    def on_event(self, event: Event) -> list[Hit]:
        """One call or address event through the rules."""
        info = event.call
        account = event.account or ""
        if event.kind is Kind.AUTH_SUCCESS:
            if event.ip is None or not account:
                return []
            ip = str(event.ip)
            self.last_ip[account] = ip
            if len(self.last_ip) > MAX_CHANNELS:
                del self.last_ip[next(iter(self.last_ip))]
            return self.engine.seen_address(account, ip, event.time)
        if info is None:
            return []
        if self.engine.config.inbound(account, info.context):
            # An inbound (DID) call: never charged to an account, only counted per trunk
            # (once: at the dial when followed live, else at its record's end).
            if event.kind is Kind.CALL_START or (event.kind is Kind.CALL_END and info.record):
                trunk = account or info.context
                return self.engine.inbound_call(
                    Call(info.uid, trunk, event.target or "", info.start)
                )
            return []
        if event.kind is Kind.CALL_START:
            ip = self.last_ip.get(account, "")
            call = Call(
                info.uid, account, event.target or "", info.start, channel=info.channel, ip=ip
            )
            if len(self.calls) >= MAX_CHANNELS:
                del self.calls[next(iter(self.calls))]
            self.calls[info.uid] = call
            return self.engine.call_started(call)
        if event.kind is Kind.CALL_ANSWER:
            live = self.calls.get(info.uid)
            if live is not None and not live.answered:
                live.answered, live.answer = True, info.answer
                self.engine.call_answered(live)
            return []
        if event.kind is Kind.CALL_END:
            if info.record:  # a finished call never followed live: checked as a CDR row
                ip = str(event.ip) if event.ip is not None else ""
                record = Call(
                    info.uid,
                    account,
                    event.target or "",
                    info.start,
                    info.end,
                    info.billsec,
                    info.answered,
                    info.channel,
                    ip,
                    info.line_no,
                )
                return self.engine.cdr_call(record)
            live = self.calls.pop(info.uid, None)
            if live is None:
                return []
            live.end, live.billsec = info.end, info.billsec
            return self.engine.call_ended(live)
        return []
