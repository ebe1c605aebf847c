"""Durations as people write them: "90s", "10m", "1h", "1d", "1w", "1h30m", or plain seconds.

Lives in detect (rule windows need it) and is re-exported by policy (ban times need it); policy
may import detect, not the other way round.
"""

from __future__ import annotations

import math
import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")
#: Words that mean "no expiry" in a ban duration list.
PERMANENT = frozenset({"permanent", "forever", "never"})


def parse_duration(value: object) -> float:
    """Seconds from "10m"-style text or a number. Raises ValueError with a plain reason."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if len(text) > 40:
            raise ValueError("duration text too long")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif _WHOLE.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 10m, 1h, 1d, 1w)")
    else:
        raise ValueError(f"not a duration: {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {value!r}")
    return seconds


#: format_duration's texts of durations that round to whole seconds other than 0 (equal values
#: give equal texts then; 0.0 and -0.0 do not); a scan formats the same few windows and ban
#: times for every alert
_TEXTS: dict[float, str] = {}


def format_duration(seconds: float | None) -> str:
    """The shortest plain form: 600 -> "10m", 5400 -> "1h30m", None -> "permanent"."""
    if seconds is None:
        return "permanent"
    text = _TEXTS.get(seconds)
    if text is not None:
        return text
    left = round(seconds)
    if left == 0:  # under half a second: two significant digits ("0.08s", not "0.0799999s")
        return f"{seconds:.2g}s"
    parts = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNITS[unit])
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    text = "".join(parts)
    if len(_TEXTS) < 4096:
        _TEXTS[seconds] = text
    return text
