"""The sensor process's link to the parser (daemon/sensorproc.py) over a real SOCK_SEQPACKET
socketpair: what the sensor's writer sends, the parser's reader turns back into the same events
and the last status; every hostile datagram or line is counted and dropped and the next good one
still gets through; the writer never blocks when the parser does not read."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Iterator
from ipaddress import ip_address
from typing import Any

import pytest

from sipguard.core.events import CallInfo, Event, Kind, Origin, Service
from sipguard.daemon import sensorproc
from sipguard.daemon.sensorproc import MAX_DATAGRAM, MAX_LINE, LinkReader, LinkWriter

TABLE = {"sip_ports": [5060]}


def drop(n: int) -> Event:
    return Event(
        time=1_765_000_000.0 + n,
        kind=Kind.SCANNER_PROBE,
        service=Service.SENSOR,
        ip=ip_address(f"203.0.113.{n}"),
        port=5060,
        transport="udp",
        user_agent="friendly-scanner",
        detail="scanner signature",
        origin=Origin("sensor", 0, "OPTIONS sip:100@pbx SIP/2.0"),
    )


@pytest.fixture
def link() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    yield a, b
    a.close()
    b.close()


def receive_all(reader: LinkReader, sock: socket.socket) -> list[Event]:
    got: list[Event] = []
    sock.setblocking(False)
    while True:
        try:
            data = sock.recv(MAX_DATAGRAM + 1)
        except BlockingIOError:
            return got
        reader.feed(data, got.append)


def status_line(**over: Any) -> bytes:
    status = {"stats": {"packets_in": 3}, "ready": True, "pid": 42, "restarts": 0, "error": ""}
    return json.dumps({"status": {**status, **over}}).encode()


def test_events_and_status_cross_the_link(link) -> None:
    ours, theirs = link
    loop = asyncio.new_event_loop()
    try:
        writer = LinkWriter(ours, loop)
        events = [drop(n) for n in range(1, 200)]
        for e in events:
            writer.event(e)
        stats = {"packets_in": 7, "dropped": 199}
        status = {"stats": stats, "ready": True, "pid": 1234, "restarts": 2, "error": "once"}
        writer.line({"status": status})
        loop.run_until_complete(asyncio.sleep(0))  # the scheduled flush runs
    finally:
        loop.close()
    assert writer.sent == 200 and writer.dropped == 0
    reader = LinkReader(theirs, TABLE)
    assert receive_all(reader, theirs) == events
    assert reader.ready and reader.pid == 1234 and reader.restarts == 2
    assert reader.stats() == {**stats, "link_events": 199, "link_status": 1}
    assert reader.problem() == "" and reader.details()["sensor_error"] == "once"


@pytest.mark.parametrize(
    ("payload", "counter"),
    [
        (b"x" * (MAX_DATAGRAM + 1), "oversized"),
        (b"{" + b" " * MAX_LINE + b"}", "oversized"),
        (b"\xff\xfe", "malformed"),
        (b"{not json", "malformed"),
        (b'{"event": {"time": NaN}}', "malformed"),
        (b"[" * 10_000, "malformed"),  # nested deeper than the decoder goes
        (b"[]", "invalid"),
        (b"{}", "invalid"),
        (b'{"ban": "0.0.0.0/0"}', "invalid"),
        (b'{"event": {"time": 1, "kind": "scanner_probe"}}', "invalid"),
        (json.dumps({"event": drop(1).to_dict(), "status": {}}).encode(), "invalid"),
        # a well-formed event that the sensor's code never writes
        (json.dumps({"event": {**drop(1).to_dict(), "service": "pjsip"}}).encode(), "invalid"),
        (
            json.dumps(
                {"event": Event(1.0, Kind.CALL_END, Service.SENSOR, call=CallInfo("u")).to_dict()}
            ).encode(),
            "invalid",
        ),
        (status_line(ready="yes"), "invalid"),
        (status_line(pid=-1), "invalid"),
        (status_line(error=None), "invalid"),
        (status_line(stats={"packets_in": True}), "invalid"),
        (status_line(stats={"packets_in": -5}), "invalid"),
        (status_line(stats={"packets_in": 1.5}), "invalid"),
        (status_line(stats={"k" * 65: 1}), "invalid"),
        (status_line(stats={f"c{i}": i for i in range(300)}), "invalid"),
    ],
)
def test_hostile_datagrams_are_counted_and_the_next_one_served(link, payload, counter) -> None:
    ours, theirs = link
    ours.send(payload)
    ours.send(json.dumps({"event": drop(9).to_dict()}).encode())
    reader = LinkReader(theirs, TABLE)
    assert receive_all(reader, theirs) == [drop(9)]
    assert reader.counts[counter] == 1, reader.counts
    assert reader.stats()[f"link_{counter}"] == 1
    assert not reader.ready and reader.last_stats == {}  # no bad status was taken


def test_one_bad_line_spoils_only_itself(link) -> None:
    ours, theirs = link
    lines = [json.dumps({"event": drop(1).to_dict()}).encode(), b"garbage", status_line()]
    ours.send(b"\n".join(lines))
    reader = LinkReader(theirs, TABLE)
    assert receive_all(reader, theirs) == [drop(1)]
    assert reader.counts == {"events": 1, "malformed": 1, "status": 1}
    assert reader.ready and reader.last_stats == {"packets_in": 3}


def test_the_writer_never_blocks_on_a_parser_that_does_not_read(link) -> None:
    ours, _theirs = link
    loop = asyncio.new_event_loop()
    try:
        writer = LinkWriter(ours, loop)
        began = time.monotonic()
        for _ in range(600):  # ~25 MB: far more than the socket buffer holds
            for n in range(1, 100):
                writer.event(drop(n))
            writer.flush()
        assert time.monotonic() - began < 20
    finally:
        loop.close()
    assert writer.dropped > 0 and writer.sent > 1000  # a busy parser's worth is kept
    assert writer.sent + writer.dropped == 600 * 99


def test_a_line_too_long_or_too_many_pending_is_dropped_not_sent(link, monkeypatch) -> None:
    monkeypatch.setattr(sensorproc, "MAX_PENDING", 10)
    ours, theirs = link
    loop = asyncio.new_event_loop()
    try:
        writer = LinkWriter(ours, loop)
        writer.line({"x": "y" * MAX_LINE})
        for _ in range(sensorproc.MAX_PENDING + 5):
            writer.event(drop(1))
        writer.flush()
    finally:
        loop.close()
    assert writer.dropped == 1 + 5
    reader = LinkReader(theirs, TABLE)
    assert len(receive_all(reader, theirs)) == sensorproc.MAX_PENDING
    assert "oversized" not in reader.counts


def test_serve_registers_once_ready_and_ends_when_the_sensor_goes(link) -> None:
    ours, theirs = link
    reader = LinkReader(theirs, TABLE)
    got: list[Event] = []
    registered: list[LinkReader] = []

    async def main() -> None:
        task = asyncio.create_task(reader.serve(TABLE, got.append, registered.append))
        ours.send(status_line(ready=False))  # still binding its queue
        ours.send(json.dumps({"event": drop(3).to_dict()}).encode())
        await asyncio.sleep(0.1)
        assert registered == [] and got == [drop(3)]
        assert reader.problem().endswith("starting")
        # binding failed (retried with backoff in the sensor process): status shows why
        ours.send(status_line(ready=False, error="ModuleNotFoundError: netfilterqueue"))
        await asyncio.sleep(0.1)
        assert registered == [reader] and "netfilterqueue" in reader.problem()
        ours.send(status_line())
        await asyncio.sleep(0.1)
        assert registered == [reader] and reader.problem() == ""
        ours.close()  # the sensor process died
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert not reader.restart_needed and not reader.ready


def test_a_changed_table_is_noted_and_a_table_added_by_reload_waits_for_restart(link) -> None:
    _ours, theirs = link
    reader = LinkReader(theirs, TABLE)
    late = LinkReader(None, {})
    registered: list[LinkReader] = []

    async def main() -> None:
        tasks = [
            asyncio.create_task(reader.serve({"sip_ports": [5070]}, print, registered.append)),
            asyncio.create_task(late.serve(TABLE, print, registered.append)),
        ]
        await asyncio.sleep(0.1)
        for t in tasks:
            assert not t.done()
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())
    assert reader.restart_needed and reader.details()["restart_needed"] is True
    assert registered == [late]  # at once: `status` says why nothing is read
    assert "restart sipguard" in late.problem()


class FakeSensor:
    def stats(self) -> dict[str, int]:
        return {"packets_in": 5}


def test_the_sensor_process_retries_reports_and_stops_when_told(link, monkeypatch) -> None:
    """serve_sensor with the queue binding replaced: the first bind fails (retried by the
    supervisor, the error in the status), the second works and its events reach the reader;
    closing the stop pipe ends it, with a last status saying it no longer judges."""
    ours, theirs = link
    attempts: list[int] = []

    async def fake_nfq(config: Any, emit: Any, *, on_ready: Any = None, **kw: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("queue 0 is taken")
        on_ready(FakeSensor())
        emit(drop(4))
        await asyncio.Event().wait()

    monkeypatch.setattr(sensorproc, "run_nfq", fake_nfq)
    monkeypatch.setattr(sensorproc, "STATUS_EVERY", 0.05)
    reader = LinkReader(theirs, TABLE)
    got: list[Event] = []
    registered: list[LinkReader] = []
    stop_r, stop_w = os.pipe()

    async def main() -> int:
        read = asyncio.create_task(reader.serve(TABLE, got.append, registered.append))
        config: Any = None  # the fake binding never reads it
        sensor = asyncio.create_task(sensorproc.serve_sensor(config, ours, stop_r))
        deadline = time.monotonic() + 10
        while not reader.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert registered == [reader] and got == [drop(4)]
        assert reader.restarts == 1 and "queue 0 is taken" in reader.error
        assert reader.stats()["packets_in"] == 5 and reader.stats()["link_dropped"] == 0
        os.close(stop_w)
        rc = await asyncio.wait_for(sensor, 5)
        await asyncio.sleep(0.1)
        read.cancel()
        return rc

    try:
        assert asyncio.run(main()) == 0
    finally:
        os.close(stop_r)
    assert not reader.ready and reader.last_stats == {"link_dropped": 0}
