"""What the engine remembers about accounts across rules: who authenticated, what is attacked.

Two named filter conditions a rule may use (`rule.toml` `[filter]`):

- `unauthenticated = true`: the event's source has never authenticated successfully on the
  event's account (as far as this engine has seen). A phone that registered once keeps the
  ordinary thresholds for its own account when it mistypes; it gains nothing for other accounts,
  and events for unknown accounts always count (there is no account it could have used).
- `authenticated = true`: the opposite, for a rule that gives such a source (an office behind
  NAT, its phones on the account they registered) a higher threshold on that account only.
- `account_alerted_by = "RULE"`: the event's account is under an alert of that account-keyed
  rule (the distributed attack), which lasts while attempts on the account go on and for the
  rule's window after the last one. A rule with this condition is the response: a lower
  threshold for every source that tries the account meanwhile.

Pure and bounded: a clock is passed in, both tables are LRU with a hard cap.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from sipguard.core.events import Event, Kind
from sipguard.detect.spec import RuleSpec

MAX_AUTHENTICATED = 100_000  # (source, account) pairs remembered
MAX_ATTACKED = 10_000  # accounts under alert remembered


@dataclass(slots=True)
class AccountAlert:
    """One account under an account-keyed rule's alert."""

    account: str
    rule: str
    since: float
    until: float  # extended while attempts on the account go on
    window: float
    sources: int  # distinct sources when the alert was raised
    severity: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {
            "account": self.account,
            "rule": self.rule,
            "since": self.since,
            "until": self.until,
            "sources": self.sources,
            "severity": self.severity,
            "reason": self.reason,
        }


class AccountWatch:
    def __init__(
        self, max_authenticated: int = MAX_AUTHENTICATED, max_attacked: int = MAX_ATTACKED
    ) -> None:
        self.max_authenticated = max_authenticated
        self.max_attacked = max_attacked
        self.now = 0.0  # the engine's clock, set on each feed(): the conditions read it
        self._authenticated: OrderedDict[tuple[int, int, str], float] = OrderedDict()
        self._attacked: OrderedDict[str, AccountAlert] = OrderedDict()
        self._asked: Event | None = None  # the last event never_authenticated() answered
        self._answer = True

    # -- what feeds it ----------------------------------------------------------------------
    def authenticated(self, event: Event, now: float) -> None:
        """A successful authentication (Kind.AUTH_SUCCESS) of the account from the source."""
        ip = event.ip
        if ip is None or event.account is None:
            return
        key = (int(ip), ip.version, event.account)
        table = self._authenticated
        if key in table:
            table.move_to_end(key)
        elif len(table) >= self.max_authenticated:
            table.popitem(last=False)
        table[key] = now
        self._asked = None  # an answer given before this success may have changed

    def alerted(self, rule: RuleSpec, account: str, sources: int, time: float, why: str) -> None:
        """An account-keyed alert a response rule waits for: the account is under attack."""
        self.raise_alert(
            AccountAlert(
                account, rule.id, time, time + rule.window, rule.window, sources, rule.severity, why
            )
        )

    def raise_alert(self, alert: AccountAlert) -> None:
        table = self._attacked
        table.pop(alert.account, None)
        if len(table) >= self.max_attacked:
            table.popitem(last=False)
        table[alert.account] = alert

    # -- the conditions -----------------------------------------------------------------------
    def tests(self, rule: RuleSpec) -> list[Callable[[Event], bool]]:
        """The rule's named conditions as tests of one event (the engine runs them after the
        rule's matchers, in this order: an attempt on an attacked account extends its alert)."""
        out: list[Callable[[Event], bool]] = []
        if rule.account_alerted_by is not None:
            out.append(partial(self.under_alert, rule.account_alerted_by))
        if rule.unauthenticated:
            out.append(self.never_authenticated)
        if rule.authenticated:
            out.append(self.authenticated_on)
        return out

    def admits(self, rule: RuleSpec, event: Event) -> bool:
        """The rule's named conditions hold for the event (its matchers are checked apart)."""
        return all(test(event) for test in self.tests(rule))

    def never_authenticated(self, event: Event) -> bool:
        if event is self._asked:  # several rules ask about one event in a row
            return self._answer
        ip = event.ip
        if event.kind is Kind.UNKNOWN_ACCOUNT or ip is None or event.account is None:
            answer = True
        else:
            # the address as an int (with its version): str() of an address costs ~5 us
            answer = (int(ip), ip.version, event.account) not in self._authenticated
        self._asked, self._answer = event, answer
        return answer

    def authenticated_on(self, event: Event) -> bool:
        return not self.never_authenticated(event)

    def under_alert(self, rule: str, event: Event) -> bool:
        """True while the event's account is under `rule`'s alert; an attempt extends it."""
        account = event.account
        if account is None:
            return False
        alert = self._attacked.get(account)
        if alert is None or alert.rule != rule:
            return False
        now = self.now
        if now > alert.until:
            del self._attacked[account]
            return False
        alert.until = max(alert.until, now + alert.window)
        return True

    # -- what status and explain show -----------------------------------------------------
    def alerts(self, now: float) -> list[AccountAlert]:
        """Accounts under alert at `now`, the newest first."""
        return [a for a in reversed(self._attacked.values()) if a.until >= now]

    def alert_for(self, account: str, now: float) -> AccountAlert | None:
        alert = self._attacked.get(account)
        return alert if alert is not None and alert.until >= now else None

    def expire(self, now: float) -> int:
        gone = [k for k, a in self._attacked.items() if a.until < now]
        for k in gone:
            del self._attacked[k]
        return len(gone)


__all__ = ["AccountAlert", "AccountWatch"]
