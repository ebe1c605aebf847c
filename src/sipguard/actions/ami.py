"""AMI actions against fraud: hang up a live channel, lock an account in AstDB.

The lock is an AstDB key (`DBPut`), family `sipguard/locked`, key = the account, value = the
rule and time. Asterisk does not act on it by itself: the dialplan checks it before dialling
out (docs/fraud.md has the snippet). Unlock = `DBDel`. Every action is recorded with the rule
and the calls behind it, so `explain` can say why a call was cut.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from sipguard.core.alerts import AccountDecision

log = logging.getLogger(__name__)

LOCK_FAMILY = "sipguard/locked"


class AmiLike(Protocol):
    """What this needs from `sipguard.sources.ami.AmiClient`."""

    async def hangup(self, channel: str, cause: int | None = None) -> bool: ...

    async def db_put(self, family: str, key: str, value: str) -> bool: ...

    async def action(self, name: str, **fields: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Taken:
    """One action taken (or, dry-run, that would have been)."""

    action: str  # "hangup" | "lock" | "unlock"
    target: str  # channel or account
    rule: str
    calls: tuple[str, ...]
    ok: bool
    time: float
    error: str = ""


@dataclass
class AmiFraudActions:
    client: AmiLike
    family: str = LOCK_FAMILY
    dry_run: bool = False
    hangup_cause: int = 21  # AST_CAUSE_CALL_REJECTED: the caller's phone shows "rejected"
    taken: list[Taken] = field(default_factory=list)
    locked: set[str] = field(default_factory=set)
    hung: dict[str, None] = field(default_factory=dict)  # channels already hung up, in order

    async def hangup(self, channel: str, rule: str, calls: tuple[str, ...] = ()) -> bool:
        """Hang up a channel (once: several rules may fire on the same call)."""
        if channel in self.hung:
            return True
        self.hung[channel] = None
        if len(self.hung) > 10_000:
            del self.hung[next(iter(self.hung))]
        ok, err = True, ""
        if not self.dry_run:
            try:
                ok = await self.client.hangup(channel, self.hangup_cause)
            except Exception as exc:  # a lost connection must not stop the watcher
                ok, err = False, str(exc)
        self._record("hangup", channel, rule, calls, ok, err)
        return ok

    async def lock(self, account: str, rule: str, calls: tuple[str, ...] = ()) -> bool:
        """Set the AstDB lock key (once per account; later hits only add to the record)."""
        if account in self.locked:
            return True
        ok, err = True, ""
        value = f"{rule} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        if not self.dry_run:
            try:
                ok = await self.client.db_put(self.family, account, value)
            except Exception as exc:
                ok, err = False, str(exc)
        if ok:
            self.locked.add(account)
        self._record("lock", account, rule, calls, ok, err)
        return ok

    async def carry_out(self, decision: AccountDecision, calls: tuple[str, ...] = ()) -> None:
        """The policy's decision about an account: hang up its live calls, lock it. A
        simulated decision (simulation mode, an allow-listed source) is only logged."""
        if decision.simulated:
            log.warning(
                "fraud %s %s (rule %s) [simulated]",
                "+".join(decision.actions),
                decision.account,
                decision.rule,
            )
            return
        if "hangup" in decision.actions:
            for channel in decision.channels:
                await self.hangup(channel, decision.rule, calls)
        if "lock" in decision.actions:
            await self.lock(decision.account, decision.rule, calls)

    async def unlock(self, account: str) -> bool:
        ok, err = True, ""
        if not self.dry_run:
            try:
                reply = await self.client.action("DBDel", Family=self.family, Key=account)
                ok = getattr(reply, "name", "") == "Success"
            except Exception as exc:
                ok, err = False, str(exc)
        self.locked.discard(account)
        self._record("unlock", account, "manual", (), ok, err)
        return ok

    def _record(
        self, action: str, target: str, rule: str, calls: tuple[str, ...], ok: bool, err: str
    ) -> None:
        self.taken.append(Taken(action, target, rule, calls, ok, time.time(), err))
        if len(self.taken) > 10_000:
            del self.taken[: len(self.taken) - 10_000]
        level = logging.WARNING if ok else logging.ERROR
        log.log(
            level,
            "fraud %s %s (rule %s, calls %s)%s%s",
            action,
            target,
            rule,
            ",".join(calls[:5]),
            " [dry-run]" if self.dry_run else "",
            f" failed: {err}" if err or not ok else "",
        )
