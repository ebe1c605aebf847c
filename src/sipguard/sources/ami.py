"""asyncio AMI client: login (plain or MD5 challenge), event stream, actions, keepalive, reconnect.

The protocol itself lives in the sans-I/O `sipguard.core.ami`; this module only moves bytes
and keeps the session alive. `run(on_event)` never returns on its own: it reconnects with
backoff (1 s doubling to 30 s) after a dropped connection, and retries a refused login at
the slow end of that backoff, logging a clear `AmiAuthError` each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from sipguard.core.ami import AmiFramer, AmiMessage, build_action, md5_key
from sipguard.core.asterisk.security import security_event
from sipguard.core.events import Event, Origin

log = logging.getLogger(__name__)

EventHandler = Callable[[AmiMessage], Awaitable[None] | None]


class AmiAuthError(Exception):
    """Asterisk refused our login (wrong user or secret, ACL, or no MD5 support)."""


class AmiActionError(Exception):
    """An action could not be completed (not connected, timed out, or connection lost)."""


class AmiClient:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5038,
        username: str = "sipguard",
        secret: str = "",
        *,
        auth: str = "md5",
        events: str = "security,system,call",
        filters: Sequence[str] = (),
        keepalive: float = 20.0,
        connect_timeout: float = 5.0,
        action_timeout: float = 10.0,
        backoff_min: float = 1.0,
        backoff_max: float = 30.0,
        raise_auth_errors: bool = False,
    ) -> None:
        if auth not in ("md5", "plain"):
            raise ValueError(f"AMI auth must be 'md5' or 'plain', not {auth!r}")
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.auth, self.events = auth, events
        # server-side event filters (the Filter action: a regex, "!regex" excludes)
        self.filters = list(filters)
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.action_timeout = action_timeout
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.raise_auth_errors = raise_auth_errors
        self.connected = asyncio.Event()
        self.version: str | None = None  # AMI version from the banner
        self.last_error: Exception | None = None
        self.stats = {"connects": 0, "events": 0, "handler_errors": 0, "reconnects": 0}
        self.framer_errors: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._lists: dict[str, list[AmiMessage]] = {}  # ActionID -> events of a list reply
        self._banner: asyncio.Future[str] | None = None
        self._logged_in = False

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    # running ---------------------------------------------------------------------------
    async def run(self, on_event: EventHandler) -> None:
        """Stay connected and hand every event to `on_event` (sync or async callable)."""
        delay = self.backoff_min
        while True:
            self._logged_in = False
            try:
                await self._session(on_event)
                err: Exception = ConnectionError(f"AMI connection to {self.where} closed")
            except AmiAuthError as e:
                if self.raise_auth_errors:
                    raise
                err, delay = e, self.backoff_max  # a wrong secret won't fix itself quickly
            except (OSError, EOFError, TimeoutError, AmiActionError) as e:
                err = e
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError  # stop requested while an error was in flight
            if self._logged_in:
                delay = self.backoff_min  # the last session worked: retry fast
            self.last_error = err
            self.stats["reconnects"] += 1
            log.warning("%s; reconnecting in %.1f s", err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def _session(self, on_event: EventHandler) -> None:
        # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(self.host, self.port)
        self._writer = writer
        self._banner = asyncio.get_running_loop().create_future()
        reading = asyncio.create_task(self._read(reader, on_event))
        tasks: set[asyncio.Task[None]] = {reading}
        try:
            async with asyncio.timeout(self.connect_timeout):
                banner = await self._banner
            self.version = banner.rpartition("/")[2] or None
            await self._login()
            await self._add_filters()
            self.stats["connects"] += 1
            self._logged_in = True
            self.connected.set()
            log.info("AMI logged in to %s as %r (AMI %s)", self.where, self.username, self.version)
            if self.keepalive > 0:
                tasks.add(asyncio.create_task(self._keepalive()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()  # raise what ended the session
        finally:
            self.connected.clear()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            self._fail_pending(AmiActionError(f"AMI connection to {self.where} lost"))
            self._writer = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read(self, reader: asyncio.StreamReader, on_event: EventHandler) -> None:
        framer = AmiFramer()
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    raise ConnectionError(f"AMI connection to {self.where} closed by peer")
                msgs = framer.feed(data)
                self.framer_errors = framer.errors
                if framer.banner is not None and self._banner and not self._banner.done():
                    self._banner.set_result(framer.banner)
                for msg in msgs:
                    await self._dispatch(msg, on_event)
        finally:
            if self._banner is not None and not self._banner.done():
                self._banner.set_exception(ConnectionError(f"no AMI banner from {self.where}"))
            # wake every caller waiting for a reply now, not at its timeout
            self._fail_pending(AmiActionError(f"AMI connection to {self.where} lost"))

    async def _dispatch(self, msg: AmiMessage, on_event: EventHandler) -> None:
        aid = msg.action_id
        if aid is not None and aid in self._lists and msg.is_event:
            if (msg.get("EventList") or "").lower() == "complete":
                fut = self._pending.get(aid)
                if fut is not None and not fut.done():
                    fut.set_result(msg)  # the collected events stay in _lists for _request
            else:
                self._lists[aid].append(msg)
            return
        if not msg.is_event:
            fut = self._pending.get(aid) if aid is not None else None
            if fut is None:
                return  # late or unsolicited reply
            if aid in self._lists and (msg.get("EventList") or "").lower() == "start":
                return  # the list items and the completion event follow
            if not fut.done():
                fut.set_result(msg)
            return
        self.stats["events"] += 1
        try:
            result = on_event(msg)
            if inspect.isawaitable(result):
                await result
        except Exception:
            # A handler bug must not tear down the AMI session; it is counted and logged.
            self.stats["handler_errors"] += 1
            log.exception("AMI event handler failed on %s", msg.name)

    def _fail_pending(self, err: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        self._lists.clear()

    async def _login(self) -> None:
        fields: dict[str, str] = {"Username": self.username}
        if self.auth == "md5":
            resp = await self._request("Challenge", {"AuthType": "MD5"})
            challenge = resp.get("Challenge")
            if resp.name != "Success" or not challenge:
                raise AmiAuthError(
                    f"AMI login refused for user '{self.username}' at {self.where}: "
                    f"MD5 challenge not offered ({resp.get('Message') or resp.name})"
                )
            fields |= {"AuthType": "MD5", "Key": md5_key(challenge, self.secret)}
        else:
            fields["Secret"] = self.secret
        fields["Events"] = self.events
        resp = await self._request("Login", fields)
        if resp.name != "Success":
            reason = resp.get("Message") or resp.name or "no reason given"
            raise AmiAuthError(
                f"AMI login refused for user '{self.username}' at {self.where}: {reason}"
            )

    async def _add_filters(self) -> None:
        for regex in self.filters:
            resp = await self._request("Filter", {"Operation": "Add", "Filter": regex})
            if resp.name != "Success":
                # not fatal: without the filter we still get the events, only more of them
                log.warning(
                    "AMI filter %r refused by %s: %s", regex, self.where, resp.get("Message")
                )

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive)
            try:
                await self._request("Ping", {}, timeout=min(self.action_timeout, self.keepalive))
            except AmiActionError as e:
                raise ConnectionError(f"AMI keepalive to {self.where} failed: {e}") from e

    # actions ---------------------------------------------------------------------------
    async def _request(
        self, name: str, fields: dict[str, str], *, timeout: float | None = None
    ) -> AmiMessage:
        return (await self._request_full(name, fields, timeout=timeout))[0]

    async def _request_full(
        self,
        name: str,
        fields: dict[str, str],
        *,
        timeout: float | None = None,
        is_list: bool = False,
    ) -> tuple[AmiMessage, list[AmiMessage]]:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiActionError(f"AMI not connected to {self.where}")
        aid = f"sg-{next(self._ids)}"
        data = build_action(name, fields, aid)  # raises AmiError on CR/LF injection
        fut: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._pending[aid] = fut
        if is_list:
            self._lists[aid] = []
        writer.write(data)
        try:
            await writer.drain()
            async with asyncio.timeout(timeout or self.action_timeout):
                resp = await fut
            return resp, self._lists.get(aid, [])
        except TimeoutError as e:
            raise AmiActionError(f"AMI action {name} to {self.where} timed out") from e
        except OSError as e:
            raise AmiActionError(f"AMI action {name} to {self.where} failed: {e}") from e
        finally:
            self._pending.pop(aid, None)
            self._lists.pop(aid, None)

    async def action(self, name: str, **fields: Any) -> AmiMessage:
        """Send an action once logged in; return its response (correlated by ActionID)."""
        await self._wait_connected()
        return await self._request(name, {k: str(v) for k, v in fields.items()})

    async def action_list(self, name: str, **fields: Any) -> tuple[AmiMessage, list[AmiMessage]]:
        """An action answered by a list of events (`EventList: start` ... `Complete`).

        Returns the completion event (or the error response) and the list's events.
        """
        await self._wait_connected()
        str_fields = {k: str(v) for k, v in fields.items()}
        return await self._request_full(name, str_fields, is_list=True)

    async def _wait_connected(self) -> None:
        try:
            async with asyncio.timeout(self.action_timeout):
                await self.connected.wait()
        except TimeoutError as e:
            raise AmiActionError(f"AMI not connected to {self.where}") from e

    async def ping(self) -> float:
        """Round-trip time of a Ping, in seconds."""
        t0 = time.monotonic()
        resp = await self.action("Ping")
        if resp.name != "Success":
            raise AmiActionError(f"AMI Ping to {self.where} answered {resp.name}")
        return time.monotonic() - t0

    async def hangup(self, channel: str, cause: int | None = None) -> bool:
        fields: dict[str, Any] = {"Channel": channel}
        if cause is not None:
            fields["Cause"] = cause
        return (await self.action("Hangup", **fields)).name == "Success"

    async def db_put(self, family: str, key: str, value: str) -> bool:
        return (await self.action("DBPut", Family=family, Key=key, Val=value)).name == "Success"

    async def db_get(self, family: str, key: str) -> str | None:
        _, events = await self.action_list("DBGet", Family=family, Key=key)
        for e in events:
            if e.name == "DBGetResponse":
                return e.get("Val") or ""
        return None


def _render(msg: AmiMessage) -> str:
    return "\n".join(f"{k}: {v}" for k, v in msg.fields)


def ami_security_events(msg: AmiMessage, now: float | None = None) -> Event | None:
    """The sipguard Event for an AMI security event, or None for any other message.

    The event's own EventTV gives its time (the same instant the security log shows, so
    the log line and the AMI event of one attempt can be counted once); `now` (default:
    the wall clock) is used only when EventTV is missing or unreadable.
    """
    if not msg.is_event or "security" not in (msg.get("Privilege") or "").split(","):
        return None
    fields = {"SecurityEvent": msg.name}
    for k, v in msg.fields:
        if k.lower() not in ("event", "privilege"):
            fields.setdefault(k, v)
    origin = Origin("ami", 0, _render(msg)[:2048])
    event = security_event(fields, None, origin)
    if event is not None and event.time == 0.0:
        event = replace(event, time=time.time() if now is None else now)
    return event
