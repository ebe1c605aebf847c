"""The dashboard's settings as the web package sees them (the daemon fills them from `[web]`),
and the checks that stop the daemon from starting a dashboard that would be unsafe."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from ipaddress import ip_address

from sipguard.web.auth import check_hash


class WebConfigError(ValueError):
    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"web.{key}: {reason}")
        self.key, self.reason = f"web.{key}", reason


@dataclass(frozen=True)
class WebConfig:
    listen: str = "127.0.0.1"
    port: int = 8080
    user: str = "admin"
    password_hash: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    session_hours: float = 12.0
    login_attempts: int = 5  # failed logins per source per minute before refusing
    push_interval: float = 1.0  # seconds between two overview pushes

    @property
    def loopback(self) -> bool:
        try:
            return self.listen == "localhost" or ip_address(self.listen).is_loopback
        except ValueError:
            return False

    @property
    def login_required(self) -> bool:
        return bool(self.password_hash) or not self.loopback

    def check(self) -> None:
        """WebConfigError naming the key: the daemon refuses to start on it."""
        if not self.loopback and not self.password_hash:
            raise WebConfigError(
                "password_hash", f"required when listening on {self.listen} (not loopback)"
            )
        if self.password_hash:
            try:
                check_hash(self.password_hash)
            except ValueError as exc:
                raise WebConfigError("password_hash", str(exc)) from None
        if bool(self.tls_cert) != bool(self.tls_key):
            raise WebConfigError("tls_key", "tls_cert and tls_key go together")
        if not 0 <= self.port < 65536:  # 0: the kernel picks one (tests)
            raise WebConfigError("port", "must be 1..65535")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls_cert:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError("tls_cert", f"cannot load {self.tls_cert}: {exc}") from None
        return ctx
