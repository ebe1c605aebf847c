"""Builds the parts of the daemon from the settings. The only place that knows every package."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.core import Network
from sipguard.detect import Engine, RuleSpec
from sipguard.pipeline import AlertObserver, Normalizer, Pipeline
from sipguard.policy import Policy, Profile

if TYPE_CHECKING:
    from sipguard.actions import Firewall
    from sipguard.sensor.config import SensorConfig


def config_file(settings: Settings, key: str = "") -> str:
    """The file to name in an error about `key` ("rules.ID", "profiles.NAME")."""
    table, _, rest = key.partition(".")
    name = rest.split(".")[0]
    origin = settings.origins.get(f"{table}.{name}")
    if origin:
        return origin
    return settings.files[-1] if settings.files else "<defaults>"


def build_rules(settings: Settings) -> list[RuleSpec]:
    from sipguard.config.rules import load_rules

    # load_rules names the rule file for its own errors and `overrides_source` for ours
    try:
        return list(load_rules(overrides=settings.rules, overrides_source=config_file(settings)))
    except ConfigError as exc:
        if exc.key.startswith("rules."):
            raise ConfigError(config_file(settings, exc.key), exc.key, exc.reason) from None
        raise


def build_profiles(settings: Settings) -> dict[str, Profile]:
    from sipguard.policy import PolicyError, profiles_from_dict

    try:
        return profiles_from_dict(settings.profiles)
    except PolicyError as exc:
        raise ConfigError(config_file(settings, exc.key), exc.key, exc.reason) from None


def build_policy(
    settings: Settings,
    allowed: Sequence[Network],
    simulate: bool,
    offences: Mapping[str, list[float]] | None = None,
) -> Policy:
    from sipguard.policy import AllowList, OffenceHistory

    history = OffenceHistory.load(offences) if offences else None
    return Policy(build_profiles(settings), AllowList(list(allowed)), simulate, history)


def build_normalizer(settings: Settings) -> Normalizer:
    """The C normalizer when built (a flood costs the PBX host a tenth of the CPU), else Python:
    the same events either way (tests/core/test_fastlog_equivalence.py, daemon interleavings)."""
    from sipguard.core.asterisk.fast import make_normalizer

    year = settings.daemon.year or time.gmtime().tm_year
    return make_normalizer(year)


def build_pipeline(
    settings: Settings, policy: Policy, on_alert: AlertObserver | None = None
) -> Pipeline:
    return Pipeline(build_normalizer(settings), build_engine(settings), policy, on_alert=on_alert)


def build_engine(settings: Settings, rules: list[RuleSpec] | None = None) -> Engine:
    rules = build_rules(settings) if rules is None else rules
    return Engine(rules, max_keys=max(1, settings.daemon.max_tracked))


def build_sensor_config(settings: Settings) -> SensorConfig | None:
    """The `[sensor]` table validated by the sensor's own parser; None when there is none (the
    packet sensor runs inside the daemon only when the table is present)."""
    if not settings.sensor:
        return None
    from sipguard.data import scanner_signatures
    from sipguard.sensor.config import parse_sensor_config

    file = settings.origins.get("sensor") or config_file(settings)
    return parse_sensor_config(settings.sensor, file=file, signatures=scanner_signatures())


def build_firewall(settings: Settings, dry_run: bool, netns: str | None = None) -> Firewall:
    from sipguard.actions import FirewallConfig, Ports, make_firewall

    fw = settings.firewall
    try:
        cfg = FirewallConfig(
            table=fw.table,
            ports=Ports(udp=fw.ports.udp, tcp=fw.ports.tcp),
            all_ports=fw.all_ports or fw.scope == "all",
            flush_conntrack=fw.flush_conntrack,
            netns=netns,
        )
    except ValueError as exc:
        raise ConfigError(config_file(settings), "firewall", str(exc)) from None
    return make_firewall("dry-run" if dry_run else fw.backend, cfg)
