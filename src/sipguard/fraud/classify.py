"""Destination classification: the dialled string to country, number type and risk.

The dialled string is normalized with the PBX's own prefixes (outside line, international and
national prefixes, `+`), then classified with `phonenumbers`. Looking a number up there costs
tens of microseconds, so results are cached twice: by the exact dialled string (offices call the
same numbers again and again) and by an E.164 prefix plus length (number types are assigned by
prefix ranges, so a number never seen before usually shares its class with a neighbour).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import PhoneNumberType

# Non-geographic "country codes" that are satellite or international networks, the classic
# termination points of revenue-share fraud.
SATELLITE_CODES = frozenset({"870", "881"})
INTERNATIONAL_NETWORK_CODES = frozenset({"882", "883", "888", "979", "800", "808"})

_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "invalid",
}

PREMIUM_TYPES = frozenset({"premium_rate", "shared_cost", "satellite", "international_network"})


@dataclass(frozen=True, slots=True)
class Numbering:
    """How this PBX's users dial out."""

    home_country: str = "US"  # ISO 3166-1 alpha-2
    outside_line: str = ""  # e.g. "9" or "0"; stripped first when present
    international_prefixes: tuple[str, ...] = ("011", "00")
    national_prefix: str = ""  # "" = let phonenumbers apply the home country's own rules
    internal_max_len: int = 6  # dialled strings this short (after stripping) are extensions
    high_risk_countries: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Destination:
    """What a dialled string reaches."""

    dialled: str
    e164: str  # "" for internal and unparsable strings
    country: str  # ISO code, "001" for non-geographic networks, "" when unknown
    type: str  # fixed, mobile, premium_rate, satellite, international_network, invalid, internal...
    scope: str  # internal | national | international | invalid
    high_risk: bool = False
    hotlist: str = ""  # the hotlist entry's label when the number falls in a listed range

    @property
    def premium(self) -> bool:
        return self.type in PREMIUM_TYPES

    @property
    def external(self) -> bool:
        return self.scope in ("national", "international")

    def in_scope(self, scopes: Iterable[str]) -> bool:
        """True when any of `scopes` (international, premium, high_risk, hotlist) applies."""
        for s in scopes:
            if (
                (s == "international" and self.scope == "international")
                or (s == "premium" and self.premium)
                or (s == "high_risk" and self.high_risk)
                or (s == "hotlist" and self.hotlist)
                or s == "any"
            ):
                return True
        return False


@dataclass(slots=True)
class Hotlist:
    """An operator's list of number ranges (E.164 digit prefixes) with a label each."""

    entries: dict[str, str] = field(default_factory=dict)
    max_len: int = 0

    def add(self, prefix: str, label: str) -> None:
        digits = prefix.lstrip("+")
        if not digits.isdigit():
            raise ValueError(f"not a number prefix: {prefix!r}")
        self.entries[digits] = label or digits
        self.max_len = max(self.max_len, len(digits))

    def match(self, e164: str) -> str:
        digits = e164[1:]
        for n in range(min(len(digits), self.max_len), 0, -1):
            label = self.entries.get(digits[:n])
            if label is not None:
                return label
        return ""


_CACHE_MAX = 262_144
_PREFIX_LEN = 8  # "+" and 7 digits: deep enough to separate premium ranges from their neighbours


class Classifier:
    """Classifies dialled strings; `classify` is cached and safe on hostile input."""

    def __init__(self, numbering: Numbering, hotlist: Hotlist | None = None) -> None:
        self.numbering = numbering
        self.hotlist = hotlist or Hotlist()
        self._exact: dict[str, Destination] = {}
        self._by_prefix: dict[tuple[str, int], tuple[str, str]] = {}
        self.lookups = 0  # calls into phonenumbers, for tests and the bench
        self._home_cc = str(phonenumbers.country_code_for_region(numbering.home_country.upper()))
        if self._home_cc == "0":
            raise ValueError(f"unknown home country {numbering.home_country!r}")
        # Longest first, so "011" wins over "0" when both could match.
        self._intl = sorted(numbering.international_prefixes, key=len, reverse=True)

    def add_hotlist(self, prefix: str, label: str) -> None:
        """A range learned while running (the fleet): the cached classes named no hotlist
        label for it, so they are dropped."""
        self.hotlist.add(prefix, label)
        self._exact.clear()

    def classify(self, dialled: str) -> Destination:
        dest = self._exact.get(dialled)
        if dest is None:
            if len(self._exact) >= _CACHE_MAX:
                self._exact.clear()  # crude but bounded; a real office never gets here
            dest = self._exact[dialled] = self._classify(dialled)
        return dest

    def normalize(self, dialled: str) -> str:
        """The E.164 form ("+4930123456"), "" for internal or unparsable strings."""
        n = self.numbering
        s = dialled[:64]
        if not s.isdigit():  # most dialled strings are digits only: nothing to drop
            s = "".join(ch for ch in s if ch.isdigit() or ch == "+")
        if n.outside_line and s.startswith(n.outside_line) and len(s) > n.internal_max_len:
            s = s[len(n.outside_line) :]
        if len(s) <= n.internal_max_len:
            return ""
        if s.startswith("+"):
            s = "+" + s[1:].replace("+", "")
        else:
            s = s.replace("+", "")
            for p in self._intl:
                if s.startswith(p):
                    return "+" + s[len(p) :]
            if n.national_prefix and s.startswith(n.national_prefix):
                return "+" + self._home_cc + s[len(n.national_prefix) :]
            if not n.national_prefix:
                return self._parse_national(s)
            return "+" + self._home_cc + s
        return s if len(s) > 3 else ""

    def _parse_national(self, s: str) -> str:
        try:
            num = phonenumbers.parse(s, self.numbering.home_country)
        except phonenumbers.NumberParseException:
            return ""
        return f"+{num.country_code}{num.national_number}"

    def _classify(self, dialled: str) -> Destination:
        e164 = self.normalize(dialled)
        if not e164:
            digits = sum(ch.isdigit() for ch in dialled)
            scope = "internal" if 0 < digits <= self.numbering.internal_max_len else "invalid"
            return Destination(dialled, "", "", scope, scope)
        key = (e164[:_PREFIX_LEN], len(e164))
        cached = self._by_prefix.get(key)
        if cached is None:
            cached = self._by_prefix[key] = self._lookup(e164)
        country, kind = cached
        if kind == "invalid" and not country:
            scope = "invalid"
        elif country == self.numbering.home_country:
            scope = "national"
        else:
            scope = "international"
        return Destination(
            dialled,
            e164,
            country,
            kind,
            scope,
            high_risk=country in self.numbering.high_risk_countries,
            hotlist=self.hotlist.match(e164) if self.hotlist.entries else "",
        )

    def _lookup(self, e164: str) -> tuple[str, str]:
        for codes, kind in (
            (SATELLITE_CODES, "satellite"),
            (INTERNATIONAL_NETWORK_CODES, "international_network"),
        ):
            if e164[1:4] in codes:
                return "001", kind
        self.lookups += 1
        try:
            num = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            return "", "invalid"
        kind = _TYPE_NAMES.get(phonenumbers.number_type(num), "invalid")
        if kind == "invalid":
            # No range matched, so no region can be named either: take the code's main country
            # (+1 -> US), which keeps a mistyped number in the country it was meant for.
            region = phonenumbers.region_code_for_country_code(num.country_code or 0)
        else:
            region = phonenumbers.region_code_for_number(num) or ""
        if region == "ZZ":
            region = ""
        return region, kind
