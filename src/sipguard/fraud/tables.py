"""Operator data as CSV: the rate table (cost per minute by prefix) and the number hotlist.

Rate CSV:    prefix,cost_per_minute[,label]      e.g. `44,0.02,UK fixed` / `+4490,1.50,UK premium`
Hotlist CSV: prefix[,label]                      e.g. `+882,international networks`
Lines starting with `#` and a header row (first cell not a number) are skipped. A bad row is an
error naming the file, the line and the reason.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from sipguard.config.errors import ConfigError
from sipguard.fraud.classify import Hotlist

MAX_TABLE_ROWS = 1_000_000


@dataclass(slots=True)
class RateTable:
    """Cost per minute by longest matching E.164 digit prefix."""

    rates: dict[str, float] = field(default_factory=dict)
    max_len: int = 0
    _cache: dict[str, float] = field(default_factory=dict)

    def add(self, prefix: str, per_minute: float) -> None:
        self.rates[prefix.lstrip("+")] = per_minute
        self.max_len = max(self.max_len, len(prefix.lstrip("+")))
        self._cache.clear()

    def per_minute(self, e164: str) -> float:
        """The rate for a number, 0.0 when no prefix matches (or the number is internal)."""
        rate = self._cache.get(e164)
        if rate is None:
            rate = 0.0
            digits = e164[1:]
            for n in range(min(len(digits), self.max_len), 0, -1):
                r = self.rates.get(digits[:n])
                if r is not None:
                    rate = r
                    break
            if len(self._cache) > 262_144:
                self._cache.clear()
            self._cache[e164] = rate
        return rate

    def cost(self, e164: str, billsec: float) -> float:
        return self.per_minute(e164) * billsec / 60.0 if e164 else 0.0


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as f:
            out = []
            for i, row in enumerate(csv.reader(f), 1):
                if i > MAX_TABLE_ROWS:
                    raise ConfigError(str(path), f"line {i}", f"more than {MAX_TABLE_ROWS} rows")
                cells = [c.strip() for c in row]
                if not cells or not cells[0] or cells[0].startswith("#"):
                    continue
                out.append((i, cells))
            return out
    except OSError as exc:
        raise ConfigError(str(path), "", exc.strerror or str(exc)) from None


def _is_prefix(cell: str) -> bool:
    return cell.lstrip("+").isdigit()


def load_rates(path: str | Path) -> RateTable:
    path = Path(path)
    table = RateTable()
    for n, (line, cells) in enumerate(_rows(path)):
        if n == 0 and not _is_prefix(cells[0]):
            continue  # header
        if not _is_prefix(cells[0]):
            raise ConfigError(str(path), f"line {line}", f"prefix {cells[0][:40]!r} is not digits")
        if len(cells) < 2:
            raise ConfigError(str(path), f"line {line}", "missing cost_per_minute column")
        try:
            rate = float(cells[1])
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate < 1e6:
            raise ConfigError(str(path), f"line {line}", f"bad cost_per_minute {cells[1][:40]!r}")
        table.add(cells[0], rate)
    return table


def load_hotlist(path: str | Path) -> Hotlist:
    path = Path(path)
    hot = Hotlist()
    for n, (line, cells) in enumerate(_rows(path)):
        if n == 0 and not _is_prefix(cells[0]):
            continue
        if not _is_prefix(cells[0]):
            raise ConfigError(str(path), f"line {line}", f"prefix {cells[0][:40]!r} is not digits")
        hot.add(cells[0], cells[1] if len(cells) > 1 else "")
    return hot


def load_country_points() -> dict[str, tuple[float, float]]:
    """Country -> (lat, lon) of one representative place (packaged data)."""
    text = (Path(__file__).parent / "data" / "country_points.csv").read_text(encoding="utf-8")
    points: dict[str, tuple[float, float]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            cc, lat, lon = line.split(",")
            points[cc] = (float(lat), float(lon))
    return points


def load_high_risk_countries() -> frozenset[str]:
    text = (Path(__file__).parent / "data" / "high_risk_countries.txt").read_text(encoding="utf-8")
    return frozenset(
        s.strip().upper() for s in text.splitlines() if s.strip() and not s.startswith("#")
    )
