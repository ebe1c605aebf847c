"""Fraud stopped on a real Asterisk 20: `sipguard run` reads the PBX's real AMI call events and
acts through the same AMI (Hangup, DBPut); the carrier (sipp as UAS in its own namespace)
traces what reached it, and the dialplan is the snippet docs/fraud.md tells administrators
to paste.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from sipguard.daemon.harness import wait_for
from sipguard.testing.netns import netns_available

sys.path.insert(0, str(Path(__file__).parent))
from fraudlab import outbound_lab, phone_call, trace_messages, trace_time, trace_times

pytestmark = [pytest.mark.netns, pytest.mark.slow]

RINGS_8S = ["-sf", str(Path(__file__).resolve().parents[1] / "probe" / "trunk_uas.xml")]
ANSWERS = ["-sn", "uas"]  # sipp's own UAS: 180, 200 at once, then waits for the BYE


@pytest.fixture(autouse=True)
def _namespaces() -> None:
    if not netns_available():
        pytest.skip("needs root and network namespaces")


@pytest.mark.parametrize("tech", ["pjsip", "chan_sip"])
def test_a_premium_call_is_hung_up_before_it_connects_and_the_account_locked(
    asterisk_prefix: Path, tmp_path: Path, tech: str
) -> None:
    """Phone 1001 (a PJSIP endpoint, or a chan_sip peer) dials a premium-rate number; the
    carrier rings and would answer after 8 s. The real DialBegin reaches the daemon, which
    hangs up and locks through AMI: the carrier gets a CANCEL, never an answer, Asterisk's
    AstDB holds the lock, and the locked account's next call is refused by the documented
    dialplan before it leaves the PBX."""
    chan_sip = tech == "chan_sip"
    port = 5070 if chan_sip else 5060
    with outbound_lab("hup", asterisk_prefix, tmp_path, RINGS_8S, chan_sip=chan_sip) as o:
        elapsed = phone_call(o.lab, o.phone, "09001234567", port=port)  # fails: hung up
        st = wait_for(lambda: (s := o.fraud())["actions"].get("lock_ok") and s, 10)
        locked = o.pbx.cli("database show sipguard/locked")
        wait_for(lambda: "CANCEL" in o.trace(), 10)
        phone_call(o.lab, o.phone, "09001234567", port=port)  # the locked account again
        wait_for(lambda: "by locked account 1001" in o.pbx.messages.read_text(), 10)
        messages, trace = o.pbx.messages.read_text(), o.trace()
    assert st["actions"]["hangup_ok"] == 1 and st["locked"] == ["1001"]
    assert st["hits"].get("risky_destination") == 1
    assert "/sipguard/locked/1001" in locked and "risky_destination" in locked
    assert "outbound call by locked account 1001 refused: risky_destination" in messages
    assert trace.count("INVITE sip:09001234567@") == 1  # the second call never left the PBX
    assert "CANCEL sip:09001234567@" in trace  # the first was cancelled while it rang ...
    assert "ACK sip:09001234567@" not in trace.split("CANCEL sip:", 1)[0]  # ... never answered
    assert elapsed < 8.0  # the phone's call ended before the carrier would have answered
    rang = trace_time(trace, "CANCEL sip:") - trace_time(trace, "INVITE sip:")
    assert 0 <= rang < 1.0, f"the carrier rang {rang:.3f} s"  # 6 ms when this was written


def test_an_answered_call_is_hung_up_when_its_running_cost_passes_the_daily_limit(
    asterisk_prefix: Path, tmp_path: Path
) -> None:
    """A national call at 1.00 a second (the rate table), a daily limit of 3.00: the carrier
    answers at once, the phone would talk for 30 s. The real DialEnd/BridgeEnter start the
    running cost; a tick after it passes 3.00 the daemon hangs up: the carrier gets the PBX's
    BYE about 3-4 s after its answer, not the phone's after 30 s."""
    limit = "[fraud.rules.spend]\ndaily_limit = 3.0\n"
    rates = "49,60.0,Germany at 1.00 a second\n"
    with outbound_lab("spend", asterisk_prefix, tmp_path, ANSWERS, limit, rates) as o:
        elapsed = phone_call(o.lab, o.phone, "0301234567", hold_ms=30_000)
        st = wait_for(lambda: (s := o.fraud())["actions"].get("hangup_ok") and s, 10)
        wait_for(lambda: "BYE sip:" in o.trace(), 10)
        trace = o.trace()
    assert st["hits"].get("spend", 0) >= 1 and st["locked"] == ["1001"]
    assert "risky_destination" not in st["hits"]  # an ordinary national number
    talked = trace_time(trace, "BYE sip:") - trace_time(trace, "SIP/2.0 200 OK", "sent")
    assert 3.0 <= talked < 6.0, f"talked {talked:.2f} s"
    assert elapsed < 15.0  # the phone's 30 s call was cut


def test_the_call_over_the_concurrency_limit_is_hung_up_and_the_others_go_on(
    asterisk_prefix: Path, tmp_path: Path
) -> None:
    """Three calls of 1001 at once (limit 2), each to talk 8 s, the carrier answering at once:
    the third real DialBegin crosses the limit and only that call is hung up (profile
    fraud-hangup: no lock); the first two talk on until the phone ends them."""
    with outbound_lab("conc", asterisk_prefix, tmp_path, ANSWERS) as o:
        elapsed = phone_call(o.lab, o.phone, "0301234567", hold_ms=8_000, calls=3)
        st = wait_for(lambda: (s := o.fraud())["actions"].get("hangup_ok") and s, 10)
        trace = o.trace()
    assert st["hits"] == {"concurrent": 1} and st["actions"] == {"hangup_ok": 1}
    assert st["locked"] == []
    invites = trace_times(trace, "INVITE sip:0301234567@")
    assert len(invites) == 3
    # each call's end (BYE, or CANCEL before the answer) by Call-ID; retransmissions skipped
    ended: dict[str, float] = {}
    for when, msg in trace_messages(trace):
        if msg.startswith(("BYE ", "CANCEL ")):
            call_id = re.search(r"^Call-ID:\s*(\S+)", msg, re.M | re.I)
            assert call_id is not None
            ended.setdefault(call_id.group(1), when)
    ends = sorted(ended.values())
    assert len(ends) == 3
    assert ends[0] - invites[2] < 1.0  # the third call, cut at once
    assert ends[1] - invites[0] >= 7.5 and ends[2] - invites[1] >= 7.5  # the others talked
    assert elapsed >= 8.0
