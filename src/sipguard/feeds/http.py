"""The adapter: one HTTP(S) GET or one file read, bounded in size and time. Blocking (the
daemon runs it in a thread). Transport problems, a body over the cap and a truncated body all
raise FeedError; HTTP status codes are answers and are returned, not raised."""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sipguard import __version__
from sipguard.feeds.parse import FeedError

_CHUNK = 64 * 1024
USER_AGENT = f"sipguard/{__version__}"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


Getter = Callable[[str, Mapping[str, str], float, int], Answer]

# http(s) only: urlopen's default opener would also follow a redirect to ftp://
_OPENER = urllib.request.OpenerDirector()
for _handler in (
    urllib.request.ProxyHandler(),  # honours https_proxy/no_proxy like other tools
    urllib.request.HTTPHandler(),
    urllib.request.HTTPSHandler(),
    urllib.request.HTTPRedirectHandler(),
    urllib.request.HTTPDefaultErrorHandler(),
    urllib.request.HTTPErrorProcessor(),
):
    _OPENER.add_handler(_handler)


def http_get(url: str, headers: Mapping[str, str], timeout: float, max_bytes: int) -> Answer:
    """GET `url`; the whole exchange must finish within `timeout` seconds (a server that drips
    one byte a second is cut off, not waited for)."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
    deadline = time.monotonic() + timeout
    try:
        try:
            resp = _OPENER.open(req, timeout=timeout)
        except urllib.error.HTTPError as err:  # 304, 4xx, 5xx: answers with a body
            resp = err
        with resp:
            status = int(resp.status if resp.status is not None else resp.code)
            hdrs = {k.lower(): v[:1000] for k, v in resp.headers.items()}
            body = _read(resp, max_bytes, deadline)
            length = hdrs.get("content-length", "")
            # read(n) returns short at a closed connection instead of raising: check the length
            if length.isdigit() and len(body) < int(length):
                raise FeedError(f"truncated body ({len(body)} of {length} bytes)")
    except FeedError:
        raise
    except http.client.IncompleteRead as exc:
        raise FeedError(f"truncated body ({len(exc.partial)} bytes)") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FeedError(f"request failed: {str(reason)[:200]}") from None
    return Answer(status, body, hdrs)


def _read(resp: object, max_bytes: int, deadline: float) -> bytes:
    read = getattr(resp, "read")  # noqa: B009 - HTTPResponse and HTTPError both have it
    parts: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise FeedError("timed out reading the body")
        try:
            chunk = read(_CHUNK)
        except TimeoutError:
            raise FeedError("timed out reading the body") from None
        if not chunk:
            return b"".join(parts)
        size += len(chunk)
        if size > max_bytes:
            raise FeedError(f"body larger than {max_bytes} bytes")
        parts.append(chunk)


def read_file(path: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise FeedError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise FeedError(f"{path}: larger than {max_bytes} bytes")
    return data
