"""`[fleet]` made usable: the files it names read and checked, the node name settled. Any
problem is one ConfigError naming the file, the key and the reason."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from sipguard.config.errors import ConfigError
from sipguard.config.settings import FleetSettings
from sipguard.fleet.wire import NODE_RE, check_key

MAX_SECRET_FILE = 4096  # a key or credentials file larger than this is not one


@dataclass(frozen=True)
class FleetConfig:
    node: str
    url: str
    key: bytes
    username: str | None = None
    password: str | None = None
    share: bool = True
    consume: bool = True
    prefix: str = "sipguard"
    maxlen: int = 1_000_000
    quorum: int = 1
    quorum_window: float = 600.0
    max_age: float = 7 * 86400.0

    @property
    def stream(self) -> str:
        return f"{self.prefix}:stream"

    @property
    def active(self) -> str:
        """Hash: network -> the signed message of its active ban (the snapshot for new nodes)."""
        return f"{self.prefix}:active"

    @property
    def expiry(self) -> str:
        """Sorted set: network -> expiry, so expired entries leave the snapshot."""
        return f"{self.prefix}:expiry"

    @property
    def ranges(self) -> str:
        """Hash: number prefix -> the signed message that reported it (fraud intelligence)."""
        return f"{self.prefix}:ranges"


def _read_secret(path: str, file: str, key: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise ConfigError(file, key, f"{path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_FILE:
        raise ConfigError(file, key, f"{path}: larger than {MAX_SECRET_FILE} bytes")
    return data


def load_fleet_config(s: FleetSettings, file: str) -> FleetConfig | None:
    """None when `[fleet]` is off; otherwise the checked configuration, or ConfigError."""
    if not s.enabled:
        return None
    node = s.node or socket.gethostname().split(".")[0]
    if not NODE_RE.fullmatch(node):
        raise ConfigError(file, "fleet.node", f"host name {node!r} is not a usable node name")
    if not s.key_file:
        raise ConfigError(file, "fleet.key_file", "required: the fleet's shared signing key")
    try:
        key = check_key(_read_secret(s.key_file, file, "fleet.key_file"))
    except ValueError as exc:
        raise ConfigError(file, "fleet.key_file", f"{s.key_file}: {exc}") from None
    username = password = None
    if s.credentials_file:
        raw = _read_secret(s.credentials_file, file, "fleet.credentials_file")
        try:
            line = raw.decode("utf-8").strip().splitlines()[0] if raw.strip() else ""
        except UnicodeDecodeError:
            raise ConfigError(file, "fleet.credentials_file", "not UTF-8 text") from None
        if not line:
            raise ConfigError(file, "fleet.credentials_file", f"{s.credentials_file}: empty")
        user, colon, pw = line.partition(":")
        username, password = (user or None, pw) if colon else (None, line)
    return FleetConfig(
        node=node,
        url=s.url,
        key=key,
        username=username,
        password=password,
        share=s.share,
        consume=s.consume,
        prefix=s.prefix,
        maxlen=s.maxlen,
        quorum=s.quorum,
        quorum_window=s.quorum_window,
        max_age=s.max_age,
    )
