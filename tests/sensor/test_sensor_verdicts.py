"""Batched NFQUEUE verdicts: what goes on the wire (the namespace tests prove the kernel agrees)."""

from __future__ import annotations

import os
import struct

from sipguard.sensor.nfq import VerdictBatch


def messages(data: bytes) -> list[tuple[int, int, int, int]]:
    """(message type, queue, verdict, packet id) of each netlink message in one write."""
    out = []
    while data:
        length, kind, flags, _seq, _pid = struct.unpack_from("=IHHII", data)
        assert flags == 1  # NLM_F_REQUEST, no ack
        _family, _version, queue = struct.unpack_from("=BBH", data, 16)
        attr_len, attr_type = struct.unpack_from("=HH", data, 20)
        assert (attr_len, attr_type) == (12, 2)  # NFQA_VERDICT_HDR
        verdict, packet_id = struct.unpack_from("!II", data, 24)
        out.append((kind, socket_ntohs(queue), verdict, packet_id))
        data = data[length:]
    return out


def socket_ntohs(value: int) -> int:
    (host,) = struct.unpack("!H", struct.pack("=H", value))
    return int(host)


VERDICT, BATCH = (3 << 8) | 1, (3 << 8) | 3
DROP, ACCEPT = 0, 1


def test_drops_go_first_then_one_batch_accept_up_to_the_newest() -> None:
    r, w = os.pipe()
    try:
        batch = VerdictBatch(w, queue=7, size=64)
        for packet_id, accept in [(1, True), (2, False), (3, True), (4, True), (5, False)]:
            batch.add(packet_id, accept)
        assert batch.writes == 0  # nothing sent before a flush
        batch.flush()
        got = messages(os.read(r, 4096))
        assert got == [(VERDICT, 7, DROP, 2), (VERDICT, 7, DROP, 5), (BATCH, 7, ACCEPT, 4)]
        batch.flush()  # nothing pending: no write
        assert batch.writes == 1
    finally:
        os.close(r)
        os.close(w)


def test_a_full_batch_is_sent_at_once_and_all_drops_alone_have_no_accept() -> None:
    r, w = os.pipe()
    try:
        batch = VerdictBatch(w, queue=0, size=3)
        batch.add(10, False)
        batch.add(11, False)
        batch.add(12, False)  # the third fills the batch: written without a flush
        assert [m[2:] for m in messages(os.read(r, 4096))] == [(DROP, 10), (DROP, 11), (DROP, 12)]
        batch.add(13, True)
        batch.add(14, True)
        batch.add(15, True)
        assert messages(os.read(r, 4096)) == [(BATCH, 0, ACCEPT, 15)]
        assert batch.writes == 2 and batch.pending == 0
    finally:
        os.close(r)
        os.close(w)


def test_a_failed_write_is_counted_not_raised() -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    batch = VerdictBatch(w, queue=0, size=64)
    batch.add(1, True)
    batch.flush()  # EBADF: the packets stay queued and the kernel fails open
    assert batch.errors == 1 and batch.pending == 0
