"""Fraud configuration: the fraud rules (rules/fraud/*/rule.toml) plus the operator's overrides.

The operator's file is a `sipguard.toml` with a `[fraud]` table (or a file holding just that
table). Every key is checked against the packaged defaults: an unknown key or a wrong type is a
ConfigError naming the file, the key and the reason.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sipguard.config.errors import ConfigError
from sipguard.config.rules import load_fraud_rules
from sipguard.config.settings import Settings
from sipguard.detect.fraudrules import typed
from sipguard.fraud.classify import Numbering
from sipguard.fraud.model import ACTIONS, SEVERITIES
from sipguard.fraud.tables import load_high_risk_countries
from sipguard.policy.profiles import DEFAULT_PROFILES, PolicyError, Profile, profiles_from_dict

# The default cdr_csv layout of Master.csv (cdr/cdr_csv.c build_csv_record); uniqueid and
# userfield are written only with loguniqueid/loguserfield (on in the sample cdr.conf), and
# newcdrcolumns adds peeraccount, linkedid, sequence.
MASTER_CSV_COLUMNS = (
    "accountcode",
    "src",
    "dst",
    "dcontext",
    "clid",
    "channel",
    "dstchannel",
    "lastapp",
    "lastdata",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "amaflags",
    "uniqueid",
    "userfield",
    "peeraccount",
    "linkedid",
    "sequence",
)
# where the usual dialplans (FreePBX, the sample extensions.conf, many guides) send calls
# from a carrier; an office dialling out never starts in one of these
INBOUND_CONTEXTS = ("from-trunk", "from-pstn", "from-did", "from-external", "from-provider")

CDR_FIELDS = frozenset(MASTER_CSV_COLUMNS) | {"ip", "ignore"}


@dataclass(frozen=True, slots=True)
class RuleSpec:
    name: str
    enabled: bool
    severity: str
    actions: tuple[str, ...]
    params: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.params[key]


@dataclass(frozen=True, slots=True)
class AccountPolicy:
    countries: frozenset[str] | None = None  # countries it may register/call from
    daily_limit: float | None = None
    max_concurrent: int | None = None


@dataclass(frozen=True, slots=True)
class CdrLayout:
    columns: tuple[str, ...] = MASTER_CSV_COLUMNS
    header: bool = False  # skip the first row
    timezone: str = ""  # the zone of the CDR's dates; "" = the office's (cdr_csv's default)


@dataclass(frozen=True, slots=True)
class FraudConfig:
    numbering: Numbering = field(default_factory=Numbering)
    rules: dict[str, RuleSpec] = field(default_factory=dict)
    accounts: dict[str, AccountPolicy] = field(default_factory=dict)
    timezone: str = "UTC"  # the office's zone: business hours and CDR local times
    ignore_accounts: frozenset[str] = frozenset()
    # Call direction: a call from a trunk endpoint, or one that entered the dialplan in an
    # inbound context, is inbound (a DID call): never charged to an account.
    trunks: frozenset[str] = frozenset()
    inbound_contexts: frozenset[str] = frozenset(INBOUND_CONTEXTS)
    cdr: CdrLayout = field(default_factory=CdrLayout)

    def inbound(self, account: str, context: str) -> bool:
        """Whether a call is inbound (from a trunk, or in an inbound context)."""
        return account in self.trunks or context in self.inbound_contexts

    def account(self, name: str) -> AccountPolicy:
        return self.accounts.get(name) or _NO_POLICY


_NO_POLICY = AccountPolicy()

_NUMBERING_KEYS = {
    "home_country": str,
    "outside_line": str,
    "international_prefixes": list,
    "national_prefix": str,
    "internal_max_len": int,
    "high_risk_countries": list,
    "extra_high_risk_countries": list,
    "timezone": str,
    "ignore_accounts": list,
    "trunks": list,
    "inbound_contexts": list,
}


def _packaged_rules() -> dict[str, dict[str, Any]]:
    """detector -> its rule's settings and parameters (what [fraud.rules.<detector>] may set)."""
    return {
        r.detector: {"enabled": r.enabled, "severity": r.severity, "profile": r.profile, **r.params}
        for r in load_fraud_rules()
    }


def _check_type(file: str, key: str, value: Any, want: Any) -> Any:
    """`value` when it has the type of `want` (a type, or a default value of that type)."""
    wanted = want if isinstance(want, type) else type(want)
    ok, value = typed(value, wanted)
    if not ok:
        raise ConfigError(file, key, f"expected {wanted.__name__}, got {type(value).__name__}")
    return value


def _rule(
    file: str,
    name: str,
    base: dict[str, Any],
    over: dict[str, Any],
    profiles: Mapping[str, Profile],
) -> RuleSpec:
    merged = dict(base)
    for key, value in over.items():
        if key not in base and key != "actions":
            raise ConfigError(file, f"fraud.rules.{name}.{key}", "unknown key")
        want = base.get(key, list)  # actions: the profile's, overridden in place (older configs)
        merged[key] = _check_type(file, f"fraud.rules.{name}.{key}", value, want)
    severity = merged.pop("severity")
    if severity not in SEVERITIES:
        raise ConfigError(file, f"fraud.rules.{name}.severity", f"must be one of {SEVERITIES}")
    if name == "inbound_volume" and severity in ("high", "critical"):
        # Inbound calls are never an account's fraud: their volume stays a lower signal.
        raise ConfigError(file, f"fraud.rules.{name}.severity", "must be low or medium")
    profile = profiles.get(merged.pop("profile"))
    if profile is None:
        known = ", ".join(sorted(profiles))
        raise ConfigError(file, f"fraud.rules.{name}.profile", f"unknown profile (known: {known})")
    actions = tuple(merged.pop("actions", profile.actions))
    for a in actions:
        if a not in ACTIONS:
            raise ConfigError(file, f"fraud.rules.{name}.actions", f"unknown action {a!r}")
    for key, value in merged.items():
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigError(file, f"fraud.rules.{name}.{key}", "must not be negative")
    enabled = bool(merged.pop("enabled"))
    return RuleSpec(name, enabled, severity, actions, merged)


def _countries(file: str, key: str, values: list[str]) -> frozenset[str]:
    out = set()
    for v in values:
        if len(v) != 2 or not v.isalpha():
            raise ConfigError(file, key, f"{v!r} is not an ISO 3166 country code")
        out.add(v.upper())
    return frozenset(out)


def build_config(
    data: dict[str, Any],
    file: str = "<defaults>",
    profiles: Mapping[str, Profile] = DEFAULT_PROFILES,
) -> FraudConfig:
    """A FraudConfig from a parsed `[fraud]` table (the packaged defaults fill the rest);
    `profiles` (the policy's) give each rule's actions."""
    base = _packaged_rules()
    for key in data:
        if key not in _NUMBERING_KEYS and key not in ("rules", "accounts", "cdr"):
            raise ConfigError(file, f"fraud.{key}", "unknown key")
    for key, want in _NUMBERING_KEYS.items():
        if key in data:
            _check_type(file, f"fraud.{key}", data[key], want)
    over_rules = data.get("rules", {})
    if not isinstance(over_rules, dict):
        raise ConfigError(file, "fraud.rules", "expected a table")
    for name in over_rules:
        if name not in base:
            raise ConfigError(file, f"fraud.rules.{name}", "unknown rule")
    rules = {n: _rule(file, n, b, over_rules.get(n) or {}, profiles) for n, b in base.items()}

    high_risk = load_high_risk_countries()
    if "high_risk_countries" in data:
        high_risk = _countries(file, "fraud.high_risk_countries", data["high_risk_countries"])
    high_risk |= _countries(
        file, "fraud.extra_high_risk_countries", data.get("extra_high_risk_countries", [])
    )
    home = str(data.get("home_country", "US")).upper()
    if len(home) != 2:
        raise ConfigError(file, "fraud.home_country", f"{home!r} is not an ISO 3166 country code")
    numbering = Numbering(
        home_country=home,
        outside_line=str(data.get("outside_line", "")),
        international_prefixes=tuple(data.get("international_prefixes", ["011", "00"])),
        national_prefix=str(data.get("national_prefix", "")),
        internal_max_len=int(data.get("internal_max_len", 6)),
        high_risk_countries=high_risk,
    )
    for key in ("outside_line", "national_prefix"):
        if not str(data.get(key, "0")).isdigit() and data.get(key, "") != "":
            raise ConfigError(file, f"fraud.{key}", "must be digits")
    tz = str(data.get("timezone", "UTC"))
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(file, "fraud.timezone", f"unknown time zone {tz!r}") from None

    accounts: dict[str, AccountPolicy] = {}
    raw_accounts = data.get("accounts", {})
    if not isinstance(raw_accounts, dict):
        raise ConfigError(file, "fraud.accounts", "expected a table")
    for name, acc in raw_accounts.items():
        key = f'fraud.accounts."{name}"'
        if not isinstance(acc, dict):
            raise ConfigError(file, key, "expected a table")
        for k in acc:
            if k not in ("countries", "daily_limit", "max_concurrent"):
                raise ConfigError(file, f"{key}.{k}", "unknown key")
        countries = acc.get("countries")
        accounts[str(name)] = AccountPolicy(
            countries=_countries(
                file, f"{key}.countries", _check_type(file, f"{key}.countries", countries, list)
            )
            if countries is not None
            else None,
            daily_limit=_check_type(file, f"{key}.daily_limit", acc["daily_limit"], float)
            if "daily_limit" in acc
            else None,
            max_concurrent=_check_type(file, f"{key}.max_concurrent", acc["max_concurrent"], int)
            if "max_concurrent" in acc
            else None,
        )

    cdr = data.get("cdr", {})
    if not isinstance(cdr, dict):
        raise ConfigError(file, "fraud.cdr", "expected a table")
    for k in cdr:
        if k not in ("columns", "header", "timezone"):
            raise ConfigError(file, f"fraud.cdr.{k}", "unknown key")
    columns = tuple(
        _check_type(file, "fraud.cdr.columns", cdr.get("columns", list(MASTER_CSV_COLUMNS)), list)
    )
    for c in columns:
        if c not in CDR_FIELDS:
            raise ConfigError(file, "fraud.cdr.columns", f"unknown column name {c!r}")
    for needed in ("dst", "start"):
        if needed not in columns:
            raise ConfigError(file, "fraud.cdr.columns", f"the layout needs a {needed!r} column")
    cdr_tz = str(_check_type(file, "fraud.cdr.timezone", cdr.get("timezone", ""), str))
    if cdr_tz:
        try:
            ZoneInfo(cdr_tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(file, "fraud.cdr.timezone", f"unknown time zone {cdr_tz!r}") from None
    return FraudConfig(
        numbering=numbering,
        rules=rules,
        accounts=accounts,
        timezone=tz,
        ignore_accounts=frozenset(
            _check_type(file, "fraud.ignore_accounts", data.get("ignore_accounts", []), list)
        ),
        trunks=frozenset(_check_type(file, "fraud.trunks", data.get("trunks", []), list)),
        inbound_contexts=frozenset(
            _check_type(
                file,
                "fraud.inbound_contexts",
                data.get("inbound_contexts", list(INBOUND_CONTEXTS)),
                list,
            )
        ),
        cdr=CdrLayout(
            columns,
            bool(_check_type(file, "fraud.cdr.header", cdr.get("header", False), bool)),
            cdr_tz,
        ),
    )


# Tables only a whole sipguard.toml has ("rules" is also a key of a bare [fraud] file).
_SETTINGS_SECTIONS = frozenset(f.name for f in dataclasses.fields(Settings)) - {
    "fraud",
    "rules",
    "files",
    "origins",
}


def load_config(path: str | Path | None) -> FraudConfig:
    """Load the operator's file (None = packaged defaults only)."""
    if path is None:
        return build_config({})
    path = Path(path)
    if path.is_dir():
        raise ConfigError(str(path), "", "is a directory: give the sipguard.toml file in it")
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(str(path), "", exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "", f"not valid TOML: {exc}") from None
    # A sipguard.toml keeps these keys under [fraud] (none: the defaults); a file of its own
    # may hold them bare.
    if "fraud" in data:
        fraud = data["fraud"]
    elif _SETTINGS_SECTIONS & data.keys():
        fraud = {}
    else:
        fraud = data
    if not isinstance(fraud, dict):
        raise ConfigError(str(path), "fraud", "expected a table")
    raw_profiles = data.get("profiles", {}) if fraud is not data else {}
    if not isinstance(raw_profiles, dict):
        raise ConfigError(str(path), "profiles", "expected a table")
    try:
        profiles = profiles_from_dict(raw_profiles)
    except PolicyError as exc:
        raise ConfigError(str(path), exc.key, exc.reason) from None
    return build_config(fraud, str(path), profiles)
