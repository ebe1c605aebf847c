"""What the control socket can be asked: status, bans, ban, unban, allow (add, list, remove),
explain, reload. `Commands` is handed the components it acts on, not the daemon."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from ipaddress import ip_network

from sipguard.core import Action, Decision, Network
from sipguard.daemon.allow import AllowListing, overlaps_any
from sipguard.daemon.control import Reply, RequestError
from sipguard.daemon.enforcer import Enforcer, forced
from sipguard.daemon.feeds import Feeds
from sipguard.store import Store

Report = dict[str, object]

MAX_EXPLAIN_EVENTS = 200


def parse_network(text: object) -> Network:
    if not isinstance(text, str) or not text or len(text) > 64:
        raise RequestError("expected an address or CIDR")
    try:
        return ip_network(text.strip(), strict=False)
    except ValueError:
        raise RequestError(f"not an address or CIDR: {text!r}") from None


def parse_account(text: object) -> str | None:
    """`explain` takes an address or an account: "account:1001", or any text that is not an
    address or CIDR (names of accounts are never addresses)."""
    if not isinstance(text, str) or not text or len(text) > 80:
        return None
    name = text.strip().removeprefix("account:")
    if name != text.strip():
        return name or None
    try:
        ip_network(name, strict=False)
        return None
    except ValueError:
        return name if name.isprintable() and " " not in name else None


def parse_for(value: object) -> float | None:
    """`--for 1h` -> seconds; "permanent" -> None."""
    from sipguard.detect.durations import PERMANENT, parse_duration

    if value is None or value == "":
        return 3600.0
    if isinstance(value, str) and value.strip().lower() in PERMANENT:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    if seconds <= 0:
        raise RequestError("the ban duration must be positive")
    return seconds


def decision_view(d: Decision, now: float, evidence: bool = False) -> dict[str, object]:
    # without evidence, skip serialising it: the dashboard asks for every ban each second
    out: dict[str, object] = dict((d if evidence else replace(d, evidence=())).to_dict())
    if not evidence:
        out.pop("evidence", None)
        out["events"] = len(d.evidence)
    out["remaining"] = None if d.expires is None else max(0.0, round(d.expires - now, 1))
    return out


class Commands:
    def __init__(
        self,
        enforcer: Enforcer,
        store: Store,
        allow: AllowListing,
        status: Callable[[], Report],
        reload: Callable[[], Awaitable[Report]],
        feeds: Feeds | None = None,
        account: Callable[[str, float], Report] | None = None,
    ) -> None:
        self.enforcer, self.store, self.allow = enforcer, store, allow
        self._status, self._reload = status, reload
        self.feeds = feeds
        # what detection knows of an account (its alert, the alerts that named it)
        self._account = account

    async def handle(self, cmd: str, args: dict[str, object]) -> Reply:
        fn = getattr(self, f"cmd_{cmd}", None)
        if fn is None:
            known = "status, bans, ban, unban, allow, allow_list, unallow, explain, reload"
            known += ", feeds_status, feeds_refresh"
            raise RequestError(f"unknown command {cmd!r} (known: {known})")
        reply: Reply = await fn(args)
        return reply

    async def cmd_status(self, args: dict[str, object]) -> Report:
        # the enforcer process's counters come over the channel, on the enforcer's I/O thread
        return {**self._status(), "enforcer": await self.enforcer.firewall_status()}

    async def cmd_bans(self, args: dict[str, object]) -> list[dict[str, object]]:
        now = time.time()
        evidence = bool(args.get("evidence"))
        return [decision_view(x, now, evidence) for x in self.enforcer.snapshot()]

    async def cmd_ban(self, args: dict[str, object]) -> dict[str, object]:
        net = parse_network(args.get("addr"))
        seconds = parse_for(args.get("for"))
        force = bool(args.get("force"))
        reason = str(args.get("reason") or "manual ban")[:500]
        hit = overlaps_any(net, self.enforcer.allowed)
        if hit is not None and not force:
            raise RequestError(f"{net} is on the allow-list ({hit}); use --force to ban it anyway")
        now = time.time()
        decision = Decision(
            network=net,
            action=Action.BAN,
            rule="manual",
            reason=reason,
            start=now,
            expires=None if seconds is None else now + seconds,
            origin="manual",
        )
        if force:
            decision = forced(decision)
        done = await self.enforcer.ban([decision], force=force)
        if not done:
            raise RequestError(f"{net} was not banned")
        return decision_view(done[0], now)

    async def cmd_unban(self, args: dict[str, object]) -> dict[str, object]:
        net = parse_network(args.get("addr"))
        if net not in self.enforcer.active:
            raise RequestError(f"{net} is not banned")
        await self.enforcer.unban([net], str(args.get("reason") or "manual unban")[:500])
        return {"unbanned": str(net)}

    async def cmd_allow(self, args: dict[str, object]) -> Report:
        net = parse_network(args.get("cidr"))
        note = str(args.get("note") or "")[:500]
        lifted = await self.allow.add(net, note)
        return {"allowed": str(net), "unbanned": [str(n) for n in lifted]}

    async def cmd_allow_list(self, args: dict[str, object]) -> list[dict[str, str]]:
        return await self.allow.entries()

    async def cmd_unallow(self, args: dict[str, object]) -> Report:
        net = parse_network(args.get("cidr"))
        try:
            await self.allow.remove(net)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        return {"removed": str(net)}

    def _explain_account(self, account: str) -> Report:
        """`explain ACCOUNT`: its alert (how many sources, until when), the alerts that named
        it lately, and the active bans whose evidence tried it."""
        now = time.time()
        known = self._account(account, now) if self._account is not None else {}
        bans = [
            decision_view(d, now)
            for d in self.enforcer.snapshot()
            if any(e.account == account for e in d.evidence)
        ]
        if not known.get("under_attack") and not known.get("alerts") and not bans:
            raise RequestError(f"nothing known about account {account!r}")
        return {
            "account": account,
            "under_attack": known.get("under_attack"),
            "alerts": known.get("alerts", []),
            "bans": bans,
        }

    async def cmd_explain(self, args: dict[str, object]) -> dict[str, object]:
        account = parse_account(args.get("addr"))
        if account is not None:
            return self._explain_account(account)
        net = parse_network(args.get("addr"))
        enf, now = self.enforcer, time.time()
        active = enf.active.get(net)
        if active is None:  # an address inside a banned CIDR or /64
            for n, dec in enf.active.items():
                if n.version == net.version and net.subnet_of(n):  # type: ignore[arg-type]
                    active = dec
                    break
        key = active.network if active is not None else net
        history = await enf.io(self.store.decision_history, key)
        events = await enf.io(self.store.events_for, key)
        allowed = overlaps_any(net, enf.allowed)
        if active is None and not history:
            raise RequestError(f"nothing known about {net}")
        # every rule that fired on the running ban: its own, and those that joined it
        since = active.start if active is not None else None
        fired = [h.rule for h in history if since is not None and h.start >= since]
        return {
            "address": str(net),
            "allow_listed": str(allowed) if allowed is not None else None,
            "active": decision_view(active, now) if active is not None else None,
            "rules": list(dict.fromkeys(fired)),
            "history": [decision_view(h, now) for h in history[-20:]],
            "events": [e.to_dict() for e in events[-MAX_EXPLAIN_EVENTS:]],
        }

    async def cmd_feeds_status(self, args: dict[str, object]) -> list[dict[str, object]]:
        return self.feeds.status() if self.feeds is not None else []

    async def cmd_feeds_refresh(self, args: dict[str, object]) -> list[dict[str, object]]:
        name = args.get("name")
        if self.feeds is None or (name is not None and name not in self.feeds.configs):
            raise RequestError(f"no feed named {str(name)[:40]!r}")
        return await self.feeds.refresh_all(str(name) if name else None)

    async def cmd_reload(self, args: dict[str, object]) -> Report:
        return await self._reload()
