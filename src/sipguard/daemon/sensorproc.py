"""The packet sensor as the third process of `sipguard run` (with a `[sensor]` table).

NFQUEUE verdicts are checked against the sending process's CAP_NET_ADMIN, so the sensor cannot
live in the parsing process, which holds no capability. The enforcer starts it as `python -m
sipguard run --sensor-fd LINK,STOP`; it keeps CAP_NET_ADMIN alone (effective, permitted and
bounding sets; no_new_privs; `[daemon] user` when set: the capability survives the uid switch)
and runs the same NfqSensor as `sipguard sensor`, supervised inside the process (a failure to
bind the queue is retried with backoff and shown in `status`). What it sees goes to the parser
over a SOCK_SEQPACKET socketpair, never the other way:

    sensor --datagrams of JSON lines--> parser (`run_sensor`: validates, queues, counts)
      {"event": <Event.to_dict()>}                 -> the detection queue, "direct"
      {"status": {"stats": {...}, "ready": bool, "pid": N, "restarts": N, "error": "..."}}

The sensor never blocks on the link: a datagram the parser's buffer cannot take is dropped and
counted (`link_dropped`), so verdicts go on while the parser is busy. The parser refuses and
counts a datagram or line over its limit (`link_oversized`), one that is not JSON
(`link_malformed`) and one that is not a sensor event or status (`link_invalid`).

If the sensor process dies (killed, a crash in the queue binding), the enforcer stops the parser
cleanly and exits with status 1: systemd restarts the three (Restart=on-failure), the bans stay
in the kernel, and the queue rule's `bypass` lets SIP through meanwhile (fail-open). A changed
`[sensor]` table needs a restart: the running sensor keeps its settings, `status` says so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from sipguard.core.eventcodec import InvalidEvent, event_from_obj
from sipguard.core.events import Event, Service
from sipguard.daemon import channel
from sipguard.daemon.logs import kv
from sipguard.daemon.supervise import SourceState, supervise
from sipguard.sensor.config import SensorConfig
from sipguard.sensor.nfq import NfqSensor
from sipguard.sensor.nfq import run_sensor as run_nfq

log = logging.getLogger("sipguard.sensor")

MAX_LINE = 16 * 1024  # one JSON line (an event's attacker text is clipped to a few hundred)
MAX_DATAGRAM = 60 * 1024  # lines sent in one datagram (well under the socket buffer)
MAX_PENDING = 8192  # lines the sensor holds between two flushes; beyond, dropped and counted
MAX_STATS = 256  # counters in one status message (the sensor sends about 40)
MAX_COUNTER = 1 << 62
SEND_BUFFER = 4 << 20  # bytes
STATUS_EVERY = 1.0  # seconds between the sensor's status messages
RESTART_NOTE = "the [sensor] table changed: the sensor process keeps its settings until restart"


def encode(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# ---- the sensor process ----------------------------------------------------------------------
class LinkWriter:
    """The sensor's end: lines gathered during one turn of the event loop go out together,
    each send non-blocking (a full buffer drops the datagram, counted)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(False)
        # room for a few thousand events while the parser is busy (a unix socket's queue is
        # bounded by the sender's buffer; the kernel caps this at net.core.wmem_max)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self.sock = sock
        self.loop = loop
        self.pending: list[bytes] = []
        self.sent = 0
        self.dropped = 0
        self._scheduled = False

    def event(self, event: Event) -> None:
        self.line({"event": event.to_dict()})

    def line(self, obj: object) -> None:
        data = encode(obj)
        if len(data) > MAX_LINE or len(self.pending) >= MAX_PENDING:
            self.dropped += 1
            return
        self.pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        lines, self.pending = self.pending, []
        start = 0
        while start < len(lines):
            end, size = start, 0
            while end < len(lines) and size + len(lines[end]) + 1 <= MAX_DATAGRAM:
                size += len(lines[end]) + 1
                end += 1
            try:
                self.sock.send(b"\n".join(lines[start:end]))
                self.sent += end - start
            except OSError:  # full (the parser is busy) or gone (the enforcer stops us)
                self.dropped += end - start
            start = end


async def serve_sensor(config: SensorConfig, sock: socket.socket, stop_fd: int) -> int:
    """The sensor process after its privileges are dropped (split.start_sensor): judge packets
    until the enforcer closes `stop_fd` (or SIGTERM), sending what the sensor sees on `sock`."""
    loop = asyncio.get_running_loop()
    writer = LinkWriter(sock, loop)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def stop_closed() -> None:  # the enforcer closed its end (or died): EOF is readable
        loop.remove_reader(stop_fd)
        stop.set()

    loop.add_reader(stop_fd, stop_closed)
    state = SourceState("sensor")
    current: list[NfqSensor] = []

    def status() -> None:
        try:
            stats = current[0].stats() if current else {}
        except Exception as exc:  # a status without counters beats no status at all
            stats = {}
            kv(log, logging.WARNING, "sensor counters unavailable", error=exc)
        stats["link_dropped"] = writer.dropped
        head = {"stats": stats, "ready": bool(current), "pid": os.getpid()}
        writer.line({"status": {**head, "restarts": state.restarts, "error": state.last_error}})

    def ready(sensor: NfqSensor) -> None:
        current[:] = [sensor]
        status()

    async def once() -> None:
        try:
            await run_nfq(config, writer.event, on_ready=ready)
        finally:
            current.clear()  # not ready while supervise waits to try again

    async def report() -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY)
            status()

    tasks = [loop.create_task(supervise(state, once)), loop.create_task(report())]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)  # the queue rules are removed here
    status()
    writer.flush()
    kv(log, logging.INFO, "sensor process stopped", sent=writer.sent, dropped=writer.dropped)
    return 0


# ---- the parsing process ---------------------------------------------------------------------
class LinkReader:
    """The parser's end: every line checked before anything of it is used."""

    def __init__(self, sock: socket.socket | None, started_with: Mapping[str, Any]) -> None:
        if sock is not None:
            sock.setblocking(False)
        self.sock = sock
        self.started_with = dict(started_with)  # the [sensor] table the sensor process read
        self.counts: Counter[str] = Counter()
        self.last_stats: dict[str, int] = {}
        self.pid = 0
        self.restarts = 0
        self.error = ""
        self.ready = False
        self.restart_needed = False

    def feed(self, datagram: bytes, emit: Callable[[Event], None]) -> None:
        """One datagram of lines; each event goes to `emit`, each status is kept."""
        if len(datagram) > MAX_DATAGRAM:
            self.counts["oversized"] += 1
            return
        for line in datagram.split(b"\n"):
            if len(line) > MAX_LINE:
                self.counts["oversized"] += 1
                continue
            try:
                msg = channel.decode(line)
            except (UnicodeDecodeError, ValueError, RecursionError):
                self.counts["malformed"] += 1
                continue
            try:
                self._message(msg, emit)
            except InvalidEvent:
                self.counts["invalid"] += 1

    def _message(self, msg: object, emit: Callable[[Event], None]) -> None:
        if not isinstance(msg, dict) or len(msg) != 1:
            raise InvalidEvent("not one message")
        if "event" in msg:
            event = event_from_obj(msg["event"])
            # the sensor judges packets: an event of another service or with a call in it
            # was not written by the sensor's code
            if event.service is not Service.SENSOR or event.call is not None:
                raise InvalidEvent("not a sensor event")
            self.counts["events"] += 1
            emit(event)
            return
        status = msg.get("status")
        if not isinstance(status, dict):
            raise InvalidEvent("unknown message")
        stats, ready = status.get("stats"), status.get("ready")
        pid, restarts, error = status.get("pid"), status.get("restarts"), status.get("error")
        if not (
            _counters(stats)
            and isinstance(ready, bool)
            and _counter(pid)
            and _counter(restarts)
            and isinstance(error, str)
        ):
            raise InvalidEvent("bad status")
        assert isinstance(stats, dict) and isinstance(pid, int) and isinstance(restarts, int)
        self.last_stats, self.ready = stats, ready
        self.pid, self.restarts, self.error = pid, restarts, error[:300]
        self.counts["status"] += 1

    async def serve(
        self,
        table: Mapping[str, Any],
        emit: Callable[[Event], None],
        register: Callable[[LinkReader], None],
    ) -> None:
        """Read until the sensor process goes; `register` once it has bound its queue or
        failed to."""
        self.restart_needed = dict(table) != self.started_with
        if self.restart_needed:
            kv(log, logging.WARNING, RESTART_NOTE)
        if self.sock is None:  # [sensor] added by a reload: nothing to read until a restart
            register(self)
            await asyncio.Event().wait()
        assert self.sock is not None
        loop = asyncio.get_running_loop()
        registered = False
        while True:
            data = await loop.sock_recv(self.sock, MAX_DATAGRAM + 1)
            if not data:
                self.ready = False
                raise ConnectionError("the sensor process closed the link")
            self.feed(data, emit)
            # once the queue is bound, or when binding it fails (status shows why)
            if not registered and (self.ready or self.error):
                register(self)
                registered = True

    def stats(self) -> dict[str, int]:
        out = dict(self.last_stats)
        out.update((f"link_{k}", v) for k, v in self.counts.items())
        return out

    def details(self) -> dict[str, object]:
        return {
            "sensor_pid": self.pid,
            "sensor_restarts": self.restarts,
            "sensor_error": self.error,
            "restart_needed": self.restart_needed,
        }

    def problem(self) -> str:
        if self.sock is None:
            return "[sensor] was added by a reload: restart sipguard to start the sensor process"
        if not self.ready:
            return f"the sensor process is not running its queue: {self.error or 'starting'}"
        return ""


def _counter(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNTER


def _counters(stats: object) -> bool:
    return (
        isinstance(stats, dict)
        and len(stats) <= MAX_STATS
        and all(isinstance(k, str) and len(k) <= 64 and _counter(v) for k, v in stats.items())
    )


_parser_link: list[LinkReader] = []  # set once in the parsing process of a privsep pair


def set_parser_link(reader: LinkReader) -> None:
    """The parsing process's end of the sensor link (split.start_parser, before any input);
    a reader without a socket when the pair runs without a sensor."""
    _parser_link[:] = [reader]


def parser_link() -> LinkReader | None:
    """None in a single process (`--no-privsep`): the sensor runs in it, as before."""
    return _parser_link[0] if _parser_link else None


def sensor_process_running() -> bool:
    link = parser_link()
    return link is not None and link.sock is not None
