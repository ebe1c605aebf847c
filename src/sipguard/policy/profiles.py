"""Ban profiles: what a rule's alert leads to, and for how long, escalating for repeat offenders.

Escalation is typed data, never a formula string: either a list of steps (`durations = ["10m",
"1h", "1d", "1w"]`, the last one is the cap) or `base * factor ** level` capped at `max`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sipguard.core.alerts import Action
from sipguard.detect.durations import PERMANENT, parse_duration

DEFAULT_FORGET_AFTER = 30 * 86400.0
#: What an alert may lead to besides a ban of its source (the fraud rules' alerts): notify,
#: hang up the account's live call, lock the account (AstDB, through AMI), ban the source.
CALL_ACTIONS = ("alert", "hangup", "lock", "ban")


class PolicyError(ValueError):
    """Invalid policy data; `key` is the dotted path (config wraps it with the file name)."""

    def __init__(self, key: str, reason: str) -> None:
        self.key, self.reason = key, reason
        super().__init__(f"{key}: {reason}")


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    action: Action = Action.BAN  # BAN or ALERT
    steps: tuple[float | None, ...] = (600.0, 3600.0, 86400.0, 604800.0)  # None = permanent
    base: float | None = None  # when set, duration = base * factor ** level, capped at max
    factor: float = 2.0
    max: float | None = None
    forget_after: float = DEFAULT_FORGET_AFTER  # offences older than this no longer count
    actions: tuple[str, ...] = ()  # of CALL_ACTIONS: what an account's alert leads to

    def duration(self, level: int) -> float | None:
        """Ban seconds for an offence at `level` (0 = first offence); None = permanent."""
        level = max(0, level)
        if self.base is not None:
            # cap the exponent first: factor ** level must not overflow for a busy repeat offender
            seconds = self.base * self.factor ** min(level, 64)
            return seconds if self.max is None else min(seconds, self.max)
        return self.steps[min(level, len(self.steps) - 1)]


DEFAULT_PROFILES: dict[str, Profile] = {
    "default": Profile("default"),
    "long": Profile("long", steps=(86400.0, 604800.0, 2_419_200.0)),
    "alert": Profile("alert", action=Action.ALERT, steps=(0.0,)),
    # the fraud rules' profiles (rules/fraud/*/rule.toml name one): alert only, or stop the
    # call, lock the account, ban the source (its ban lasts as [daemon.fraud] profile says)
    "fraud-alert": Profile("fraud-alert", Action.ALERT, (0.0,), actions=("alert",)),
    "fraud-hangup": Profile("fraud-hangup", Action.ALERT, (0.0,), actions=("alert", "hangup")),
    "fraud-lock": Profile("fraud-lock", Action.ALERT, (0.0,), actions=("alert", "lock")),
    "fraud-stop": Profile("fraud-stop", Action.ALERT, (0.0,), actions=("alert", "hangup", "lock")),
    "fraud-ban": Profile("fraud-ban", actions=("alert", "ban", "lock")),
}


def _seconds(key: str, value: object, allow_permanent: bool = False) -> float | None:
    if allow_permanent and isinstance(value, str) and value.strip().lower() in PERMANENT:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PolicyError(key, str(exc)) from None


def profile_from_dict(name: str, data: Mapping[str, object], key: str = "") -> Profile:
    """One `[profiles.NAME]` table. Keys: action, durations | base+factor+max, forget_after."""
    key = key or f"profiles.{name}"
    allowed = {"action", "durations", "base", "factor", "max", "forget_after", "actions"}
    extra = sorted(set(data) - allowed)
    if extra:
        raise PolicyError(f"{key}.{extra[0]}", "unknown key")
    action_text = data.get("action", "ban")
    if action_text not in ("ban", "alert"):
        raise PolicyError(f"{key}.action", f"needs ban or alert, got {action_text!r}")
    action = Action(str(action_text))
    actions = data.get("actions", [])
    if not isinstance(actions, list) or any(a not in CALL_ACTIONS for a in actions):
        raise PolicyError(f"{key}.actions", f"needs a list of {', '.join(CALL_ACTIONS)}")
    calls = tuple(str(a) for a in actions)
    forget = _seconds(f"{key}.forget_after", data.get("forget_after", DEFAULT_FORGET_AFTER))
    assert forget is not None
    if "base" in data:
        if "durations" in data:
            raise PolicyError(f"{key}.durations", "use either durations or base/factor/max")
        base = _seconds(f"{key}.base", data["base"])
        factor = data.get("factor", 2.0)
        if (
            isinstance(factor, bool)
            or not isinstance(factor, int | float)
            or not 1 <= factor <= 100
        ):
            raise PolicyError(f"{key}.factor", f"needs a number from 1 to 100, got {factor!r}")
        cap = _seconds(f"{key}.max", data["max"]) if "max" in data else None
        return Profile(name, action, (), base, float(factor), cap, forget, calls)
    raw = data.get("durations", ["10m", "1h", "1d", "1w"] if action is Action.BAN else ["0s"])
    if not isinstance(raw, list) or not raw or len(raw) > 50:
        raise PolicyError(f"{key}.durations", "needs a list of 1 to 50 durations")
    steps = tuple(_seconds(f"{key}.durations[{i}]", v, True) for i, v in enumerate(raw))
    return Profile(name, action, steps, forget_after=forget, actions=calls)


def profiles_from_dict(data: Mapping[str, object], key: str = "profiles") -> dict[str, Profile]:
    """The `[profiles]` table merged over the shipped defaults (default, long, alert)."""
    out = dict(DEFAULT_PROFILES)
    for name, table in data.items():
        if not isinstance(table, Mapping):
            raise PolicyError(f"{key}.{name}", "needs a table")
        out[name] = profile_from_dict(name, table, f"{key}.{name}")
    return out
