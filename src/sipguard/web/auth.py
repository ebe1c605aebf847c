"""The dashboard's login: scrypt password hashes, sessions with a CSRF token each, and a
per-source login limiter. No I/O and no clock: every call that needs the time is handed `now`.

A stored hash reads `scrypt$N$r$p$SALT$HASH` (salt and hash in URL-safe base64), so the cost can
be raised later without breaking the hashes already written in configuration files.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB and ~50 ms a login on this class of host
MAX_PASSWORD = 1024  # longer input is refused before it costs a KDF run
MAX_SESSIONS = 1000  # the oldest session is dropped beyond this (bounded memory)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_hash(stored: str) -> None:
    """ValueError naming what is wrong with a configured hash (checked at start)."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("expected scrypt$N$r$p$salt$hash (make one with `sipguard web-password`)")
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        raise ValueError("scrypt parameters or base64 are not valid") from None
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        raise ValueError("scrypt N must be a power of two >= 1024, r 1..64, p 1..16")
    if len(salt) < 8 or len(digest) < 16:
        raise ValueError("scrypt salt or hash too short")


def verify_password(password: str, stored: str) -> bool:
    if len(password) > MAX_PASSWORD:
        return False
    parts = stored.split("$")
    n, r, p = (int(x) for x in parts[1:4])
    salt, want = _unb64(parts[4]), _unb64(parts[5])
    got = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=256 * 1024 * 1024
    )
    return hmac.compare_digest(got, want)


@dataclass(slots=True)
class Session:
    user: str
    csrf: str
    expires: float


class Sessions:
    """Random opaque session ids (the cookie) -> who and the CSRF token of that session."""

    def __init__(self, lifetime: float, limit: int = MAX_SESSIONS) -> None:
        self.lifetime, self.limit = lifetime, limit
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str, now: float) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), now + self.lifetime)
        self._by_id[sid] = session
        while len(self._by_id) > self.limit:
            self._by_id.popitem(last=False)
        return sid, session

    def get(self, sid: str | None, now: float) -> Session | None:
        if not sid or len(sid) > 128:
            return None
        session = self._by_id.get(sid)
        if session is None or session.expires <= now:
            self._by_id.pop(sid, None)
            return None
        return session

    def drop(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def __len__(self) -> int:
        return len(self._by_id)


def csrf_ok(session: Session | None, token: str | None) -> bool:
    return session is not None and bool(token) and hmac.compare_digest(session.csrf, token or "")


class LoginLimiter:
    """At most `attempts` failed logins per source within `window` seconds; the next ones are
    refused without running the KDF (so guessing is slow and costs the host nothing). Each
    failure is also an event the detection engine counts (rule web-login-failures)."""

    def __init__(self, attempts: int = 5, window: float = 60.0, sources: int = 10_000) -> None:
        self.attempts, self.window, self.sources = attempts, window, sources
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.refused = 0

    def allowed(self, source: str, now: float) -> bool:
        times = self._failures.get(source)
        if times is None:
            return True
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.attempts:
            return True
        self.refused += 1
        return False

    def failed(self, source: str, now: float) -> None:
        times = self._failures.pop(source, None) or deque(maxlen=self.attempts)
        times.append(now)
        self._failures[source] = times  # most recent last: the oldest source is evicted first
        while len(self._failures) > self.sources:
            self._failures.popitem(last=False)

    def succeeded(self, source: str) -> None:
        self._failures.pop(source, None)
