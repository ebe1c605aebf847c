"""What the control socket can be asked: status, bans, ban, unban, allow, explain, reload."""

from __future__ import annotations

import os
import time
from ipaddress import ip_network
from typing import TYPE_CHECKING, Any

from sipguard import __version__
from sipguard.core import Action, Decision, Network
from sipguard.daemon.allow import overlaps_any
from sipguard.daemon.control import RequestError
from sipguard.daemon.enforcer import forced

if TYPE_CHECKING:
    from sipguard.daemon.app import Daemon

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


def decision_view(d: Decision, now: float, evidence: bool = False) -> dict[str, Any]:
    out = d.to_dict()
    if not evidence:
        out.pop("evidence", None)
        out["events"] = len(d.evidence)
    out["remaining"] = None if d.expires is None else max(0.0, round(d.expires - now, 1))
    return out


def _as_dict(stats: Any) -> dict[str, Any]:
    as_dict = getattr(stats, "as_dict", None)
    return dict(as_dict()) if callable(as_dict) else {}


class Commands:
    def __init__(self, daemon: Daemon) -> None:
        self.d = daemon

    async def handle(self, cmd: str, args: dict[str, Any]) -> Any:
        fn = getattr(self, f"cmd_{cmd}", None)
        if fn is None:
            known = "status, bans, ban, unban, allow, explain, reload"
            raise RequestError(f"unknown command {cmd!r} (known: {known})")
        return await fn(args)

    async def cmd_status(self, args: dict[str, Any]) -> dict[str, Any]:
        d, now = self.d, time.time()
        p = d.pipeline
        stats = getattr(p.normalizer, "stats", None)
        engine_size = getattr(p.engine, "state_size", lambda: None)()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(now - d.started, 1),
            "config": list(d.settings.files) or ["<embedded defaults>"],
            "backend": "dry-run" if d.dry_run else d.settings.firewall.backend,
            "simulate": d.simulate,
            "active_bans": len(d.enforcer.active),
            "allow_list": [str(n) for n in d.enforcer.allowed],
            "sources": {name: self._source(name, s.to_dict()) for name, s in d.sources.items()},
            "pipeline": dict(p.counts),
            "normalizer": stats.as_dict() if stats is not None else {},
            "engine_keys": engine_size,
            "engine": _as_dict(getattr(p.engine, "stats", None)),
            "queue": {"events_waiting": d._events.qsize(), "dropped": d.drops},
            "firewall": {
                "add": d.enforcer.add_timing.to_dict(),
                "remove": d.enforcer.remove_timing.to_dict(),
                "errors": d.enforcer.errors,
                "refused_allow_listed": d.enforcer.refused_allowed,
            },
            "reloads": dict(d.reloads, last_error=d.last_reload_error),
            "control": {"requests": d.control.requests, "refused": d.control.refused},
            "recent_alerts": list(p.recent)[-20:],
            "accounts_under_attack": [a.to_dict() for a in self._account_alerts(now)],
            "fraud": d.fraud.status() if d.fraud is not None else {"enabled": False},
        }

    def _source(self, name: str, state: dict[str, Any]) -> dict[str, Any]:
        """The supervisor's view plus what the source itself counts."""
        obj = self.d.source_objects.get(name)
        stats = getattr(obj, "stats", None)
        if callable(stats):  # the packet sensor computes its counters on demand
            stats = stats()
        if isinstance(stats, dict):
            state["stats"] = dict(stats)
        if name == "logs" and obj is not None:
            state["inotify"] = bool(getattr(obj, "inotify_active", False))
        if name == "ami" and obj is not None:
            connected = getattr(obj, "connected", None)
            state["connected"] = bool(connected.is_set()) if connected is not None else None
            err = getattr(obj, "last_error", None)
            state["ami_error"] = str(err) if err is not None else ""
        return state

    async def cmd_bans(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        now = time.time()
        evidence = bool(args.get("evidence"))
        return [decision_view(x, now, evidence) for x in self.d.enforcer.snapshot()]

    async def cmd_ban(self, args: dict[str, Any]) -> dict[str, Any]:
        net = parse_network(args.get("addr"))
        seconds = parse_for(args.get("for"))
        force = bool(args.get("force"))
        reason = str(args.get("reason") or "manual ban")[:500]
        hit = overlaps_any(net, self.d.enforcer.allowed)
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
        done = await self.d.enforcer.ban([decision], force=force)
        if not done:
            raise RequestError(f"{net} was not banned")
        return decision_view(done[0], now)

    async def cmd_unban(self, args: dict[str, Any]) -> dict[str, Any]:
        net = parse_network(args.get("addr"))
        if net not in self.d.enforcer.active:
            raise RequestError(f"{net} is not banned")
        await self.d.enforcer.unban([net], str(args.get("reason") or "manual unban")[:500])
        return {"unbanned": str(net)}

    async def cmd_allow(self, args: dict[str, Any]) -> dict[str, Any]:
        net = parse_network(args.get("cidr"))
        note = str(args.get("note") or "")[:500]
        await self.d.enforcer.io(self.d.store.allowlist_add, str(net), note)
        lifted = await self.d.allow([net])
        return {"allowed": str(net), "unbanned": [str(n) for n in lifted]}

    def _account_alerts(self, now: float) -> list[Any]:
        """Accounts under an account-keyed alert (detect/accounts.py), newest first."""
        watch = getattr(self.d.pipeline.engine, "accounts", None)
        return list(watch.alerts(now)) if watch is not None else []

    def _explain_account(self, account: str) -> dict[str, Any]:
        """`explain ACCOUNT`: its alert (how many sources, until when), the alerts that named
        it lately, and the active bans whose evidence tried it."""
        now = time.time()
        alert = next((a for a in self._account_alerts(now) if a.account == account), None)
        key = f"account:{account}"
        recent = [r for r in self.d.pipeline.recent if r["key"] == key]
        bans = [
            decision_view(d, now)
            for d in self.d.enforcer.snapshot()
            if any(e.account == account for e in d.evidence)
        ]
        if alert is None and not recent and not bans:
            raise RequestError(f"nothing known about account {account!r}")
        return {
            "account": account,
            "under_attack": alert.to_dict() if alert is not None else None,
            "alerts": recent[-20:],
            "bans": bans,
        }

    async def cmd_explain(self, args: dict[str, Any]) -> dict[str, Any]:
        what = args.get("addr")
        account = parse_account(what)
        if account is not None:
            return self._explain_account(account)
        net = parse_network(what)
        enf, now = self.d.enforcer, time.time()
        active = enf.active.get(net)
        if active is None:  # an address inside a banned CIDR or /64
            for n, dec in enf.active.items():
                if n.version == net.version and net.subnet_of(n):  # type: ignore[arg-type]
                    active = dec
                    break
        key = active.network if active is not None else net
        history = await enf.io(self.d.store.decision_history, key)
        events = await enf.io(self.d.store.events_for, key)
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

    async def cmd_reload(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self.d.reload()
