"""A test AMI server that speaks the real Asterisk Manager wire protocol.

Behaviour follows Asterisk 20's main/manager.c: the banner, `Challenge` with `AuthType: MD5`,
`Login` by plain `Secret` or MD5 `Key`, the exact response texts, the `Events:` mask applied to
each event's categories, `Ping`/`Pong` with a timestamp, `Logoff` -> `Goodbye`, a failed login
answered with `Authentication failed` and the connection closed, and actions before login
answered with `Permission denied`. Listens on 127.0.0.1 unless told otherwise.

    async with AmiServer(users={"sipguard": "s3cret"}) as server:
        ... connect to server.port ...
        await server.push_security("InvalidAccountID", AccountID="100", ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sipguard.core.ami import AmiFramer, AmiMessage, format_message, md5_key

Fields = list[tuple[str, str]]
#: a reply handler gets the action and returns the messages to send back
Handler = Callable[[AmiMessage], list[Fields]]

AST20_AMI_VERSION = "9.0.0"  # include/asterisk/manager.h in 20.x; 22.x says 11.0.0

# Asterisk's permission labels (manager.c perms[]); "all" is added to every Privilege line.
CATEGORIES = (
    *("system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf"),
    *("reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test", "security"),
    "message",
)

# Severity and EventVersion Asterisk 20 gives each security event
# (include/asterisk/security_events_defs.h and main/security_events.c)
_SECURITY_DEFAULTS: dict[str, tuple[str, str]] = {
    "FailedACL": ("Error", "1"),
    "InvalidAccountID": ("Error", "1"),
    "SessionLimit": ("Error", "1"),
    "MemoryLimit": ("Error", "1"),
    "LoadAverageLimit": ("Error", "1"),
    "RequestNotSupported": ("Error", "1"),
    "RequestNotAllowed": ("Error", "1"),
    "AuthMethodNotAllowed": ("Error", "1"),
    "RequestBadFormat": ("Error", "1"),
    "SuccessfulAuth": ("Informational", "1"),
    "UnexpectedAddress": ("Error", "2"),
    "ChallengeResponseFailed": ("Error", "1"),
    "InvalidPassword": ("Error", "2"),
    "ChallengeSent": ("Informational", "1"),
    "InvalidTransport": ("Error", "1"),
}


def event_mask(value: str | None) -> frozenset[str]:
    """Categories a session receives for an `Events:` header (manager.c strings_to_mask)."""
    if value is None or value.strip() == "":
        return frozenset(CATEGORIES)  # unchanged from the default: everything
    v = value.strip().lower()
    if v.isdigit():
        return frozenset(CATEGORIES) if int(v) else frozenset()
    if v in ("no", "false", "off", "n", "f", "0"):
        return frozenset()
    if v in ("yes", "true", "on", "y", "t", "1"):
        return frozenset(CATEGORIES)
    labels = {p.strip() for p in v.split(",")}
    if "all" in labels:
        return frozenset(CATEGORIES)
    return frozenset(labels & set(CATEGORIES))


@dataclass
class AmiSession:
    writer: asyncio.StreamWriter
    peer: tuple[str, int]
    username: str | None = None
    authenticated: bool = False
    challenge: str = ""
    events: frozenset[str] = field(default_factory=lambda: frozenset(CATEGORIES))
    include: list[re.Pattern[str]] = field(default_factory=list)  # `Filter` action regexes
    exclude: list[re.Pattern[str]] = field(default_factory=list)  # `Filter: !regex`

    def wants(self, text: str) -> bool:
        """manager.c should_send_event: includes first (if any), then excludes."""
        if self.include and not any(r.search(text) for r in self.include):
            return False
        return not any(r.search(text) for r in self.exclude)

    def send(self, fields: Iterable[tuple[str, str]]) -> None:
        if not self.writer.is_closing():
            self.writer.write(format_message(fields))


class AmiServer:
    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        version: str = AST20_AMI_VERSION,
        fail_delay: float = 0.0,  # Asterisk sleeps 1 s before answering a failed login
        host: str = "127.0.0.1",  # loopback, or an address inside a test's own namespace
    ) -> None:
        self.host = host
        self.users = dict(users if users is not None else {"sipguard": "s3cret"})
        self.version = version
        self.fail_delay = fail_delay
        self.actions: list[AmiMessage] = []  # every action received, in order
        self.sessions: list[AmiSession] = []  # currently connected
        self.logins = 0  # successful logins
        self.failed_logins = 0
        self.connections = 0
        self.answer_ping = True  # False simulates a hung Asterisk for keepalive tests
        self.db: dict[tuple[str, str], str] = {}
        self.handlers: dict[str, Handler] = {
            "ping": self._ping,
            "logoff": self._logoff,
            "dbput": self._dbput,
            "dbget": self._dbget,
            "hangup": lambda m: [_ack(m, "Channel Hungup")],
            "originate": lambda m: [_ack(m, "Originate successfully queued")],
        }
        self._server: asyncio.Server | None = None
        self._action_seen = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()

    # lifecycle -------------------------------------------------------------------------
    async def start(self) -> AmiServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.drop_connections()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AmiServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def drop_connections(self) -> None:
        """Close every client connection (as an Asterisk restart would)."""
        for s in list(self.sessions):
            s.writer.close()
        for s in list(self.sessions):
            with contextlib.suppress(OSError):
                await s.writer.wait_closed()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await t

    # configuration ---------------------------------------------------------------------
    def set_reply(self, action: str, reply: Fields | Handler) -> None:
        """Answer `action` with fixed fields (ActionID is added) or a handler's messages."""
        if callable(reply):
            self.handlers[action.lower()] = reply
        else:
            fixed = list(reply)
            self.handlers[action.lower()] = lambda m: [_with_id(m, fixed)]

    # pushing events --------------------------------------------------------------------
    async def push_event(self, fields: Fields | Mapping[str, str], privilege: str = "") -> int:
        """Send an event to every logged-in session whose mask allows it; returns how many.

        `fields` start with `Event`; `Privilege: <categories>,all` is inserted after it as
        Asterisk does (pass `privilege`, or include a `Privilege` field yourself).
        """
        pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
        if not any(k.lower() == "privilege" for k, _ in pairs):
            pairs.insert(1, ("Privilege", f"{privilege},all" if privilege else "<none>"))
        priv = next(v for k, v in pairs if k.lower() == "privilege")
        cats = {c for c in priv.split(",") if c in CATEGORIES}
        text = format_message(pairs).decode()
        sent = 0
        for s in self.sessions:
            if s.authenticated and cats <= s.events and s.wants(text):
                s.send(pairs)
                sent += 1
        for s in self.sessions:
            with contextlib.suppress(OSError):
                await s.writer.drain()
        return sent

    async def push_security(self, event: str, **fields: str) -> int:
        """A security event formatted as Asterisk 20 sends it (fixed order, extras last)."""
        severity, version = _SECURITY_DEFAULTS.get(event, ("Error", "1"))
        now = time.time()
        ms = int(now % 1 * 1000)
        tv = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{ms:03d}+0000"
        order = ["EventTV", "Severity", "Service", "EventVersion", "AccountID", "SessionID"]
        order += ["LocalAddress", "RemoteAddress"]
        base = {"EventTV": tv, "Severity": severity, "Service": "PJSIP", "EventVersion": version}
        base.update(fields)
        pairs = [("Event", event), ("Privilege", "security,all")]
        pairs += [(k, base.pop(k)) for k in order if k in base]
        pairs += list(base.items())
        return await self.push_event(pairs)

    async def wait_for_action(self, name: str, timeout: float = 5.0) -> AmiMessage:
        """The first recorded action called `name` (waits for it to arrive)."""

        def find() -> AmiMessage | None:
            for a in self.actions:
                if (a.get("Action") or "").lower() == name.lower():
                    return a
            return None

        async with self._action_seen:
            async with asyncio.timeout(timeout):
                await self._action_seen.wait_for(find)
        found = find()
        assert found is not None
        return found

    # protocol --------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        session = AmiSession(writer, writer.get_extra_info("peername")[:2])
        self.sessions.append(session)
        framer = AmiFramer(expect_banner=False)
        try:
            writer.write(f"Asterisk Call Manager/{self.version}\r\n".encode())
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for msg in framer.feed(data):
                    if not await self._handle(session, msg):
                        return
                await writer.drain()
        except (ConnectionError, OSError):
            return
        finally:
            self.sessions.remove(session)
            writer.close()
            with contextlib.suppress(OSError, asyncio.CancelledError):
                await writer.wait_closed()
            self._tasks.discard(task)

    async def _handle(self, s: AmiSession, m: AmiMessage) -> bool:
        """Answer one action; False closes the connection."""
        self.actions.append(m)
        async with self._action_seen:
            self._action_seen.notify_all()
        action = (m.get("Action") or "").lower()
        if not action:
            s.send(_error(m, "Missing action in request"))
            return True
        if not s.authenticated and action not in ("login", "logoff", "challenge"):
            s.send(_error(m, "Permission denied"))
            return True
        if action == "challenge":
            if (m.get("AuthType") or "").lower() == "md5":
                if not s.challenge:
                    s.challenge = str(random.randrange(10**8, 2**31))
                s.send(_with_id(m, [("Response", "Success"), ("Challenge", s.challenge)]))
            else:
                s.send(_error(m, "Must specify AuthType"))
            return True
        if action == "login":
            return await self._login(s, m)
        if action == "filter":
            s.send(self._filter(s, m))
            return True
        handler = self.handlers.get(action)
        if handler is None:
            text = f"Invalid/unknown command: {m.get('Action')}. "
            s.send(_error(m, text + "Use Action: ListCommands to show available commands."))
            return True
        for reply in handler(m):
            s.send(reply)
        return action != "logoff"

    async def _login(self, s: AmiSession, m: AmiMessage) -> bool:
        if s.authenticated:
            s.send(_ack(m, "Already authenticated"))
            return True
        user = m.get("Username") or ""
        secret = self.users.get(user)
        ok = False
        if secret is not None:
            if (m.get("AuthType") or "").lower() == "md5":
                key = m.get("Key") or ""
                ok = bool(key and s.challenge) and key == md5_key(s.challenge, secret)
            else:
                ok = m.get("Secret") == secret
        if not ok:
            self.failed_logins += 1
            await asyncio.sleep(self.fail_delay)
            s.send(_error(m, "Authentication failed"))
            await s.writer.drain()
            return False  # manager.c ends the session after a failed login
        s.authenticated = True
        s.username = user
        s.events = event_mask(m.get("Events"))
        self.logins += 1
        s.send(_ack(m, "Authentication accepted"))
        if "system" in s.events:
            s.send(
                [
                    ("Event", "FullyBooted"),
                    ("Privilege", "system,all"),
                    ("Uptime", "120"),
                    ("LastReload", "120"),
                    ("Status", "Fully Booted"),
                ]
            )
        return True

    def _filter(self, s: AmiSession, m: AmiMessage) -> Fields:
        if (m.get("Operation") or "").lower() != "add":
            return _error(m, "Unknown operation")
        text = m.get("Filter") or ""
        exclude = text.startswith("!")
        try:
            regex = re.compile(text[1:] if exclude else text)
        except re.error:
            return _error(m, "Filter did not compile.  Check the syntax of the filter given.")
        (s.exclude if exclude else s.include).append(regex)
        return _ack(m, "Success")

    def _ping(self, m: AmiMessage) -> list[Fields]:
        if not self.answer_ping:
            return []
        ts = f"{time.time():.6f}"
        return [_with_id(m, [("Response", "Success"), ("Ping", "Pong"), ("Timestamp", ts)])]

    def _logoff(self, m: AmiMessage) -> list[Fields]:
        return [_with_id(m, [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")])]

    def _dbput(self, m: AmiMessage) -> list[Fields]:
        family, key = m.get("Family") or "", m.get("Key") or ""
        if not family:
            return [_error(m, "No family specified")]
        if not key:
            return [_error(m, "No key specified")]
        self.db[(family, key)] = m.get("Val") or ""
        return [_ack(m, "Updated database successfully")]

    def _dbget(self, m: AmiMessage) -> list[Fields]:
        family, key = m.get("Family") or "", m.get("Key") or ""
        if not family:
            return [_error(m, "No family specified.")]
        if not key:
            return [_error(m, "No key specified.")]
        if (family, key) not in self.db:
            return [_error(m, "Database entry not found")]
        aid = [("ActionID", m.action_id)] if m.action_id else []
        start = [("Response", "Success"), *aid, ("EventList", "start")]
        item = [("Event", "DBGetResponse"), ("Family", family), ("Key", key)]
        item += [("Val", self.db[(family, key)]), *aid]
        done = [("Event", "DBGetComplete"), *aid, ("EventList", "Complete"), ("ListItems", "1")]
        return [[*start, ("Message", "Result will follow")], item, done]


def _with_id(m: AmiMessage, fields: Fields) -> Fields:
    """Insert the caller's ActionID after the first field, as astman_send_response does."""
    if m.action_id:
        return [fields[0], ("ActionID", m.action_id), *fields[1:]]
    return list(fields)


def _ack(m: AmiMessage, message: str) -> Fields:
    return _with_id(m, [("Response", "Success"), ("Message", message)])


def _error(m: AmiMessage, message: str) -> Fields:
    return _with_id(m, [("Response", "Error"), ("Message", message)])
