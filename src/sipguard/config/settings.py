"""sipguard.toml: schema, embedded defaults, loading with conf.d/*.toml overrides, validation.

With no file at all the defaults protect a standard Asterisk install: its messages, full and
security logs, state in /var/lib/sipguard, nftables. Every key a file sets is checked here against
the schema (the dataclasses below), so an unknown key or a wrong type stops the start with one
line naming the file, the key and the reason. `[profiles.*]`, `[rules.*]`, `[sensor]` and
`[fraud]` are passed through as plain dicts: their owners validate them. `[daemon.fraud]` (whether
and how the daemon runs the fraud watcher) is checked here: it sits outside `[fraud]` so that
`sipguard fraud scan --config sipguard.toml` keeps reading the same file.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from sipguard.config.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/sipguard/sipguard.toml")
MAX_FILE = 1024 * 1024  # a configuration file larger than this is a mistake (or an attack)
ASTERISK_LOGS = [
    f"/var/log/asterisk/{name}"
    for name in ("messages", "messages.log", "full", "full.log", "security", "security.log")
]
DEFAULT_PROFILES: dict[str, dict[str, Any]] = {
    "default": {"action": "ban", "durations": ["10m", "1h", "1d", "1w"], "forget_after": "30d"},
    "alert": {"action": "alert"},
}


@dataclass(frozen=True)
class FraudRunSettings:
    """`[daemon.fraud]`: toll-fraud protection inside the daemon (the rules stay in `[fraud]`)."""

    enabled: bool = False  # run the fraud watcher on the daemon's AMI connection
    cdr: list[str] = field(default_factory=list)  # CDR files (Master.csv) to follow as well
    rates: str = ""  # rate table CSV (prefix,cost_per_minute) for the spend rule
    hotlist: str = ""  # number ranges CSV (prefix,label) to treat as fraud
    notify: list[str] = field(default_factory=list)  # apprise URLs for new incidents
    profile: str = "default"  # ban profile for fraud alerts that carry an address


@dataclass(frozen=True)
class DaemonSettings:
    state_dir: str = "/var/lib/sipguard"
    control_socket: str = "/run/sipguard/control.sock"
    socket_group: str = ""  # group whose members may use the control socket (root always may)
    # the parsing process (logs, AMI, CDRs) runs as this user when set; `groups` are extra
    # groups it keeps, e.g. ["adm", "asterisk"] to read Asterisk's logs (see daemon/privsep.py)
    user: str = ""
    group: str = ""
    groups: list[str] = field(default_factory=list)
    log_format: str = "kv"  # kv | json
    log_level: str = "info"  # debug | info | warning | error
    simulate: bool = False  # report what would be banned, ban nothing
    tick_interval: float = 1.0  # seconds between expiry/linking ticks
    queue_size: int = 10000  # bounded event queue for AMI/journald; overflow is counted
    year: int = 0  # year for logs whose dates carry none; 0 = the current year
    max_tracked: int = 20_000  # keys each rule tracks at once; the least recent are evicted
    fraud: FraudRunSettings = field(default_factory=FraudRunSettings)


@dataclass(frozen=True)
class LogSettings:
    enabled: bool = True
    paths: list[str] = field(default_factory=lambda: list(ASTERISK_LOGS))
    poll_interval: float = 0.5
    from_end_if_new: bool = True  # a log seen for the first time is read from its end


@dataclass(frozen=True)
class JournaldSettings:
    enabled: bool = False
    identifier: str = "asterisk"


@dataclass(frozen=True)
class AmiSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = ""
    secret: str = ""
    auth: str = "md5"  # md5 | plain
    events: str = "security,system,call"
    keepalive: float = 20.0


@dataclass(frozen=True)
class PortSettings:
    udp: str = "5060-5061,4569"
    tcp: str = "5060-5061"


@dataclass(frozen=True)
class FirewallSettings:
    backend: str = "nftables"  # nftables | iptables | dry-run
    table: str = "sipguard"
    # "all": a ban drops every packet of the source (every port and protocol); "ports": only
    # the [firewall.ports] list. Default "all": see docs/firewall.md for why.
    scope: str = "all"
    ports: PortSettings = field(default_factory=PortSettings)
    all_ports: bool = False  # older spelling of scope = "all"; true still means all
    flush_conntrack: bool = True


@dataclass(frozen=True)
class AllowSettings:
    networks: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    own_addresses: bool = True  # loopback and this host's addresses are always allowed


@dataclass(frozen=True)
class StoreSettings:
    path: str = ""  # "" = <state_dir>/sipguard.db
    keep_days: int = 90


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = False  # serve Prometheus metrics at http://<listen>/metrics
    listen: str = "127.0.0.1:9877"  # HOST:PORT; beyond loopback, firewall it to the scraper


@dataclass(frozen=True)
class FleetSettings:
    """`[fleet]`: share decisions with other sipguard nodes through Redis (docs/fleet.md)."""

    enabled: bool = False
    node: str = ""  # this node's name in the fleet; "" = the host name
    url: str = "redis://127.0.0.1:6379/0"  # redis://, rediss:// (TLS), unix://, sentinel://
    credentials_file: str = ""  # "user:password" or "password" (Redis 6 ACL), one line
    key_file: str = ""  # the fleet's shared HMAC key (at least 16 bytes); required
    share: bool = True  # publish this node's own decisions
    consume: bool = True  # apply the other nodes' decisions
    prefix: str = "sipguard"  # Redis key prefix: <prefix>:stream, <prefix>:active
    maxlen: int = 1_000_000  # stream entries kept (XADD MAXLEN ~)
    quorum: int = 1  # distinct nodes that must report an address before it is banned here
    quorum_window: float = 600.0  # seconds within which those reports count
    max_age: float = 7 * 86400.0  # older messages are stale (a copied entry added again)


@dataclass(frozen=True)
class SourcesSettings:
    logs: LogSettings = field(default_factory=LogSettings)
    journald: JournaldSettings = field(default_factory=JournaldSettings)
    ami: AmiSettings = field(default_factory=AmiSettings)


@dataclass(frozen=True)
class WebSettings:
    """`[web]`: the dashboard (sipguard.web), served by the daemon."""

    enabled: bool = False
    listen: str = "127.0.0.1"  # any other address requires password_hash
    port: int = 8080
    user: str = "admin"
    password_hash: str = ""  # scrypt$N$r$p$salt$hash, from `sipguard web-password`
    tls_cert: str = ""  # PEM files; without them, put a TLS reverse proxy in front
    tls_key: str = ""
    session_hours: float = 12.0
    login_attempts: int = 5  # failed logins per source per minute before refusing
    asterisk_config: str = "/etc/asterisk"  # audited for the Audit page ("" = no audit)


@dataclass(frozen=True)
class Settings:
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    sources: SourcesSettings = field(default_factory=SourcesSettings)
    firewall: FirewallSettings = field(default_factory=FirewallSettings)
    allow: AllowSettings = field(default_factory=AllowSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    fleet: FleetSettings = field(default_factory=FleetSettings)
    profiles: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensor: dict[str, Any] = field(default_factory=dict)
    fraud: dict[str, Any] = field(default_factory=dict)
    web: WebSettings = field(default_factory=WebSettings)
    probe: dict[str, Any] = field(default_factory=dict)  # `sipguard probe` (targets, numbers)
    feeds: list[dict[str, Any]] = field(default_factory=list)  # [[feeds]]: sipguard.feeds.config
    notify: dict[str, Any] = field(default_factory=dict)  # notification routes (sipguard.notify)
    files: tuple[str, ...] = ()  # the files that were read, in order
    # "rules.ID" / "profiles.NAME" -> the file that set it last, for errors found later
    origins: dict[str, str] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return self.store.path or str(Path(self.daemon.state_dir) / "sipguard.db")

    def to_dict(self, mask_secrets: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("files")
        d.pop("origins")
        if mask_secrets and d["sources"]["ami"]["secret"]:
            d["sources"]["ami"]["secret"] = "********"
        if mask_secrets and d["web"]["password_hash"]:
            d["web"]["password_hash"] = "********"
        if mask_secrets:  # a Redis URL may carry a password: redis://user:pass@host
            d["fleet"]["url"] = re.sub(r"//[^@/]*@", "//********@", d["fleet"]["url"])
        if mask_secrets:  # notification URLs carry passwords and tokens
            d["daemon"]["fraud"]["notify"] = ["********" for _ in d["daemon"]["fraud"]["notify"]]
            for route in d["notify"].get("route", []):
                if isinstance(route, dict) and isinstance(route.get("urls"), list):
                    route["urls"] = ["********" for _ in route["urls"]]
        return d


# keys whose values are free-form tables, validated by the subsystem that uses them
_RAW_TABLES = {"profiles", "rules", "sensor", "fraud", "probe", "feeds", "notify"}
_CHOICES = {
    "daemon.log_format": {"kv", "json"},
    "daemon.log_level": {"debug", "info", "warning", "error"},
    "sources.ami.auth": {"md5", "plain"},
    "firewall.backend": {"nftables", "iptables", "dry-run"},
    "firewall.scope": {"all", "ports"},
}
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # as sipguard.fleet.wire.NODE_RE
_FLEET_SCHEMES = ("redis://", "rediss://", "unix://", "sentinel://", "sentinels://")


#: what every --config option says (one text, so the commands cannot disagree)
CONFIG_HELP = (
    "sipguard.toml, or a directory holding sipguard.toml and/or conf.d/*.toml "
    f"(default {DEFAULT_CONFIG.parent})"
)


#: for the commands that read only the main file's table (the sensor's), and no default file
MAIN_CONFIG_HELP = "sipguard.toml, or the directory holding it"


def main_file(path: str | Path) -> Path:
    """The main file --config names: the path itself, or sipguard.toml in a directory."""
    p = Path(path)
    return p / DEFAULT_CONFIG.name if p.is_dir() else p


def config_files(path: str | Path | None) -> list[Path]:
    """The main file then conf.d/*.toml beside it, in name order. A missing default file is fine.

    A directory (`--config /etc/sipguard`): its sipguard.toml and conf.d/, either may be absent.
    """
    given_dir = path is not None and Path(path).is_dir()
    main = main_file(path) if path is not None else DEFAULT_CONFIG
    files: list[Path] = []
    if main.is_file():
        files.append(main)
    elif path is not None and not given_dir:
        raise ConfigError(str(main), "", "no such file or directory")
    confd = main.parent / "conf.d"
    if confd.is_dir():
        files.extend(sorted(p for p in confd.glob("*.toml") if p.is_file()))
    if given_dir and not files:
        raise ConfigError(str(path), "", f"no {main.name} and no conf.d/*.toml in this directory")
    return files


def load_settings(path: str | Path | None = None) -> Settings:
    """Read, validate and merge the configuration; raises ConfigError (one line) on any problem."""
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    files = config_files(path)
    for f in files:
        try:
            with f.open("rb") as fh:
                raw = fh.read(MAX_FILE + 1)
            if len(raw) > MAX_FILE:
                raise ConfigError(str(f), "", f"larger than {MAX_FILE} bytes")
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(str(f), "", "not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(str(f), "", exc.strerror or str(exc)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(f), "", f"invalid TOML: {exc}") from None
        _check_table(Settings, data, "", str(f))
        _merge(merged, data)
        for table in ("rules", "profiles"):
            for name in data.get(table, {}):
                origins[f"{table}.{name}"] = str(f)
        for table in ("sensor", "fraud", "probe", "feeds", "notify"):
            if table in data:
                origins[table] = str(f)
    extra = {"files": tuple(str(f) for f in files), "origins": origins}
    settings: Settings = _build(Settings, merged, "", extra)
    return settings


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_table(cls: type, data: dict[str, Any], prefix: str, file: str) -> None:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name not in ("files", "origins")}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(file, dotted, f"unknown key (expected one of: {known})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(file, dotted, f"expected a table, got {_tname(value)}")
            _check_table(typing.cast(type, hint), value, f"{dotted}.", file)
        elif key in _RAW_TABLES and not prefix:
            _check_raw(key, value, file)
        else:
            _check_value(hint, value, dotted, file)


def _check_raw(key: str, value: Any, file: str) -> None:
    if key == "feeds":  # an array of tables, each checked by sipguard.feeds.config
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(file, key, "expected an array of tables ([[feeds]])")
        return
    if not isinstance(value, dict):
        raise ConfigError(file, key, f"expected a table, got {_tname(value)}")
    if key in ("profiles", "rules"):
        for name, sub in value.items():
            if not isinstance(sub, dict):
                raise ConfigError(file, f"{key}.{name}", f"expected a table, got {_tname(sub)}")


def _check_value(hint: Any, value: Any, key: str, file: str) -> None:
    origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(file, key, f"expected a list of strings, got {_tname(value)}")
        if key == "allow.networks":
            for v in value:
                try:
                    ip_network(v, strict=False)
                except ValueError:
                    raise ConfigError(file, key, f"not an address or CIDR: {v!r}") from None
        return
    ok = (
        (hint is bool and isinstance(value, bool))
        or (hint is int and isinstance(value, int) and not isinstance(value, bool))
        or (hint is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (hint is str and isinstance(value, str))
    )
    if not ok:
        raise ConfigError(file, key, f"expected {hint.__name__}, got {_tname(value)}")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ConfigError(file, key, f"must be one of {', '.join(sorted(_CHOICES[key]))}")
    if hint in (int, float) and value < 0:
        raise ConfigError(file, key, "must not be negative")
    if key in ("sources.ami.port", "web.port") and not 0 < value < 65536:
        raise ConfigError(file, key, "must be a port number 1-65535")
    if key == "firewall.table" and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,19}", value):
        raise ConfigError(file, key, "must be a letter then up to 19 letters, digits or _")
    if key in ("firewall.ports.udp", "firewall.ports.tcp"):
        check_port_spec(value, key, file)
    if key.startswith("fleet."):
        _check_fleet(key, value, file)


def _check_fleet(key: str, value: Any, file: str) -> None:
    if key == "fleet.url" and not value.startswith(_FLEET_SCHEMES):
        raise ConfigError(file, key, f"must start with one of {', '.join(_FLEET_SCHEMES)}")
    if key == "fleet.node" and value and not _NODE.fullmatch(value):
        raise ConfigError(file, key, "must be letters, digits, '.', '_' or '-' (at most 64)")
    if key == "fleet.prefix" and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9:._-]{0,63}", value):
        raise ConfigError(file, key, "must be letters, digits, ':', '.', '_' or '-' (at most 64)")
    if key in ("fleet.quorum", "fleet.maxlen") and value < 1:
        raise ConfigError(file, key, "must be at least 1")
    if key in ("fleet.quorum_window", "fleet.max_age") and value <= 0:
        raise ConfigError(file, key, "must be positive")


def check_port_spec(spec: str, key: str, file: str) -> None:
    """ "5060-5061,4569": ports and ranges, comma-separated (empty = none)."""
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ConfigError(file, key, f"not a port or range: {part!r}") from None
        if not (0 < a <= b < 65536):
            raise ConfigError(file, key, f"not a port or range: {part!r}")


def _build(cls: type, data: dict[str, Any], prefix: str, extra: dict[str, Any]) -> Any:
    hints = _hints(cls)
    kwargs: dict[str, Any] = dict(extra)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        hint, value = hints[f.name], data[f.name]
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(typing.cast(type, hint), value, f"{prefix}{f.name}.", {})
        elif f.name == "profiles" and not prefix:
            # a file's profiles add to (or override) the embedded ones rather than replace them all
            profiles = {k: dict(v) for k, v in DEFAULT_PROFILES.items()}
            for name, sub in value.items():
                profiles[name] = {**profiles.get(name, {}), **sub}
            kwargs[f.name] = profiles
        elif hint is float:
            kwargs[f.name] = float(value)
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


def _tname(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


def render_toml(d: dict[str, Any], prefix: str = "") -> str:
    """The effective configuration as TOML (for `sipguard config check`)."""
    scalars, tables = [], []
    arrays = []
    for key, value in d.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))  # [[feeds]]
        else:
            scalars.append(f"{_tkey(key)} = {_tvalue(value)}")
    out = []
    if scalars or (prefix and not tables):
        if prefix:
            out.append(f"[{prefix}]")
        out.extend(scalars)
        out.append("")
    for key, value in tables:
        out.append(render_toml(value, f"{prefix}.{_tkey(key)}" if prefix else _tkey(key)))
    for key, items in arrays:
        name = f"{prefix}.{_tkey(key)}" if prefix else _tkey(key)
        for item in items:
            out.append(f"[[{name}]]")
            out.extend(f"{_tkey(k)} = {_tvalue(v)}" for k, v in item.items())
            out.append("")
    return "\n".join(out)


def _tkey(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else f'"{key}"'


def _tvalue(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_tvalue(v) for v in value) + "]"
    s = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'
