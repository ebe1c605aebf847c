"""The AMI framer's whole-message path gives exactly what its line-by-line path gives.

`AmiFramer.feed` parses a whole CRLF message at once when nothing is pending; anything unusual
goes line by line. A framer whose `_idle` always says no takes only the line path: both must
return the same messages, errors and banner for any bytes cut at any points.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sipguard.core.ami import AmiFramer, AmiMessage, format_message


def line_only(**kw: int | bool) -> AmiFramer:
    f = AmiFramer(**kw)  # type: ignore[arg-type]
    f._idle = lambda: False  # type: ignore[method-assign]
    return f


def run(f: AmiFramer, data: bytes, cuts: list[int]) -> tuple[list[AmiMessage], dict[str, int]]:
    out: list[AmiMessage] = []
    last = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out += f.feed(data[last:cut])
        last = max(last, cut)
    return out, f.errors


PIECES = [
    b"Asterisk Call Manager/9.0.0\r\n",
    b"Event: Newchannel\r\nPrivilege: call,all\r\nUniqueid: 1.1\r\n\r\n",
    b"Response: Follows\r\nPrivilege: Command\r\nout: x\r\n\r\n--END COMMAND--\r\n\r\n",
    b"Response: Follows\r\n\r\n",
    b"Event: X\r\nno colon\r\n\r\n",
    b"Event: X\r\n : spaced key\r\nA :x\r\n\r\n",
    b"Event: X\nA: lf only\n\n",
    b"Event: Y\r\nA: \xff\xfe\xe2\x82\r\nB:\r\nC:  two\r\nD: a\rb\r\r\n\r\n",
    b"\r\n\r\n",
    b"\n",
    b"Event: Many\r\n" + b"".join(b"K%d: v\r\n" % i for i in range(12)) + b"\r\n",
    b"Event: Big\r\nX: " + b"y" * 300 + b"\r\n\r\n",
    b"ChanVariable: A=1\r\nChanVariable: B=2\r\n\r\n",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40)), max_size=12),
    st.lists(st.integers(min_value=0, max_value=4000), max_size=4),
    st.booleans(),
)
def test_whole_message_path_equals_line_path(
    pieces: list[bytes], cuts: list[int], banner: bool
) -> None:
    data = b"".join(pieces)
    kw = {"max_message_bytes": 256, "max_fields": 8, "expect_banner": banner}
    fast, slow = AmiFramer(**kw), line_only(**kw)  # type: ignore[arg-type]
    assert run(fast, data, cuts) == run(slow, data, cuts)
    assert fast.banner == slow.banner and len(fast._buf) == len(slow._buf)


def test_whole_messages_take_the_fast_path_and_keep_every_field() -> None:
    msgs = [
        format_message([("Event", "DialBegin"), ("Privilege", "call,all"), ("Exten", f"0{i}")])
        for i in range(50)
    ]
    f = AmiFramer()
    f.feed(b"Asterisk Call Manager/9.0.0\r\n")

    def no_lines(raw: bytes) -> None:
        raise AssertionError(f"line path used for {raw!r}")

    f._line = no_lines  # type: ignore[assignment,method-assign]
    got = f.feed(b"".join(msgs))
    assert [m.get("exten") for m in got] == [f"0{i}" for i in range(50)]
    assert got[0].fields == (("Event", "DialBegin"), ("Privilege", "call,all"), ("Exten", "00"))


def test_get_first_value_any_case() -> None:
    m = AmiMessage((("Event", "X"), ("chanvariable", "A=1"), ("ChanVariable", "B=2")))
    assert m.get("CHANVARIABLE") == "A=1" and m.get("missing", "d") == "d"
    assert m == AmiMessage((("Event", "X"), ("chanvariable", "A=1"), ("ChanVariable", "B=2")))
    assert hash(m) == hash(AmiMessage(m.fields))
