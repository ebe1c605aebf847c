"""The `[sensor]` table: parsed and validated into a `SensorConfig`, errors naming file and key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network

from sipguard.config.errors import ConfigError
from sipguard.data import scanner_signatures

Network = IPv4Network | IPv6Network

#: Methods with a token bucket unless the config says otherwise: (tokens per second, burst).
DEFAULT_RATES: dict[str, tuple[float, float]] = {
    "REGISTER": (2.0, 20.0),
    "INVITE": (2.0, 20.0),
    "OPTIONS": (2.0, 20.0),
}


@dataclass(frozen=True)
class SensorConfig:
    domains: frozenset[str]  # lower-case, no trailing dot; empty = secret-domain check off
    sip_ports: tuple[int, ...] = (5060,)
    tls_ports: tuple[int, ...] = (5061,)
    queue: int = 0
    workers: int = 1  # processes, each on its own queue (queue .. queue+workers-1)
    trusted: tuple[Network, ...] = ()
    block_scanners: bool = True
    signatures: tuple[str, ...] = ()
    rates: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_RATES))
    max_sources: int = 100_000  # token-bucket entries kept
    max_dialogs: int = 50_000
    dialog_ttl: float = 3600.0  # seconds a dialog stays known after its last message
    max_flows: int = 4096  # TCP/TLS flows reassembled at once
    enabled: bool = True  # the daemon starts the sensor only when true
    file: str = field(default="", compare=False)


def _fail(file: str, key: str, reason: str) -> ConfigError:
    return ConfigError(file, f"sensor.{key}", reason)


def _str_list(table: Mapping[str, object], key: str, file: str) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(file, key, "must be a list of strings")
    return [str(v) for v in value]


def _ports(
    table: Mapping[str, object], key: str, default: Sequence[int], file: str
) -> tuple[int, ...]:
    value = table.get(key, list(default))
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(file, key, "must be a non-empty list of port numbers")
    for port in value:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _fail(file, key, f"{port!r} is not a port number (1-65535)")
    return tuple(value)


def _positive(
    table: Mapping[str, object], key: str, default: float, file: str, prefix: str = ""
) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise _fail(file, prefix + key, f"must be a positive number, not {value!r}")
    return float(value)


def _domain(text: str, file: str) -> str:
    d = text.strip().lower().rstrip(".")
    labels = d.split(".")
    ok = (
        bool(d)
        and len(d) <= 253
        and all(
            lab and len(lab) <= 63 and lab.replace("-", "").isalnum() and lab.isascii()
            for lab in labels
        )
    )
    if not ok:
        raise _fail(file, "domains", f"{text!r} is not a domain name")
    return d


def _rates(table: Mapping[str, object], file: str) -> dict[str, tuple[float, float]]:
    value = table.get("rate_limits")
    if value is None:
        return dict(DEFAULT_RATES)
    if not isinstance(value, dict):
        raise _fail(file, "rate_limits", "must be a table of METHOD = {rate = N, burst = N}")
    out: dict[str, tuple[float, float]] = {}
    for method, spec in value.items():
        key = f"rate_limits.{method}"
        if not isinstance(method, str) or not method.isalpha():
            raise _fail(file, key, "method must be a SIP method name such as REGISTER")
        if not isinstance(spec, dict) or set(spec) - {"rate", "burst"}:
            raise _fail(file, key, "must be {rate = per-second, burst = count}")
        rate = _positive(spec, "rate", 1.0, file, key + ".")
        burst = _positive(spec, "burst", max(rate, 1.0), file, key + ".")
        if burst < 1:
            raise _fail(file, f"{key}.burst", "must be at least 1")
        out[method.upper()] = (rate, burst)
    return out


KNOWN_KEYS = {
    "enabled", "domains", "sip_ports", "tls_ports", "queue", "trusted", "block_scanners",
    "signatures", "rate_limits", "max_sources", "max_dialogs", "dialog_ttl", "max_flows",
    "workers",
}  # fmt: skip


def parse_sensor_config(
    table: Mapping[str, object],
    file: str = "sipguard.toml",
    signatures: Sequence[str] | None = None,
) -> SensorConfig:
    """Validate the `[sensor]` table. `signatures` are the scanner signatures to start from
    (default: the list shipped in sipguard.data); the table's `signatures` list adds to them."""
    if signatures is None:
        signatures = scanner_signatures()
    for key in table:
        if key not in KNOWN_KEYS:
            raise _fail(file, key, "unknown key")
    domains = frozenset(_domain(d, file) for d in _str_list(table, "domains", file))
    trusted: list[Network] = []
    for text in _str_list(table, "trusted", file):
        try:
            trusted.append(ip_network(text.strip(), strict=False))
        except ValueError:
            raise _fail(file, "trusted", f"{text!r} is not an address or CIDR network") from None
    queue = table.get("queue", 0)
    if isinstance(queue, bool) or not isinstance(queue, int) or not 0 <= queue <= 65535:
        raise _fail(file, "queue", f"must be a queue number 0-65535, not {queue!r}")
    workers = table.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
        raise _fail(file, "workers", f"must be a number of processes 1-64, not {workers!r}")
    if queue + workers - 1 > 65535:
        raise _fail(file, "workers", "queue + workers - 1 must stay below 65536")
    block = table.get("block_scanners", True)
    enabled = table.get("enabled", True)
    for key, flag in (("block_scanners", block), ("enabled", enabled)):
        if not isinstance(flag, bool):
            raise _fail(file, key, "must be true or false")
    sigs = [s.strip() for s in (*signatures, *_str_list(table, "signatures", file)) if s.strip()]
    sip_ports = _ports(table, "sip_ports", (5060,), file)
    tls_ports = _ports(table, "tls_ports", (5061,), file)
    if set(sip_ports) & set(tls_ports):
        raise _fail(file, "tls_ports", "must not overlap sip_ports")
    return SensorConfig(
        domains=domains,
        sip_ports=sip_ports,
        tls_ports=tls_ports,
        queue=queue,
        workers=workers,
        trusted=tuple(trusted),
        block_scanners=bool(block),
        signatures=tuple(dict.fromkeys(sigs)),
        rates=_rates(table, file),
        max_sources=int(_positive(table, "max_sources", 100_000, file)),
        max_dialogs=int(_positive(table, "max_dialogs", 50_000, file)),
        dialog_ttl=_positive(table, "dialog_ttl", 3600.0, file),
        max_flows=int(_positive(table, "max_flows", 4096, file)),
        enabled=bool(enabled),
        file=file,
    )
