"""The live call tracker: AMI events to engine calls (sans-I/O; the time is passed in).

Events used (field names as Asterisk 12+ sends them, main/manager_channels.c):
- `Newchannel`: a channel exists (Channel, Uniqueid, Exten, AccountCode, CallerIDNum);
- `DialBegin`: the caller's channel dials out; the caller's `Exten` is what was dialled
  (falling back to the DialString's number). The call is checked here, before it connects;
- `DialEnd` (DialStatus ANSWER) / `BridgeEnter`: answered, running cost starts;
- `Hangup`: the call ended (spend, short-call bursts);
- `Cdr`: a finished call the tracker never saw start (cdr_manager), checked as a CDR row;
- `CEL` (cel_manager): CHAN_START, APP_START of Dial, ANSWER and HANGUP, as the above;
- `SuccessfulAuth` (security), `ContactStatus` (PJSIP), `PeerStatus` (chan_sip): an account
  registered or authenticated from an address (address-country rules).
With `timestampevents=yes` an event's `Timestamp` is used instead of the arrival time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.model import Call, Hit, account_of

Get = Callable[[str], str | None]  # case-insensitive field lookup of one event
MAX_CHANNELS = 20_000  # tracked channels; beyond this the oldest are dropped (counted)


@dataclass(slots=True)
class _Chan:
    uid: str
    channel: str
    account: str
    exten: str
    start: float
    call: Call | None = None  # set once it dials out


def _number_in_dialstring(dialstring: str) -> str:
    """`trunk/0044…`, `PJSIP/0044…@trunk`, `0044…@trunk` -> `0044…`."""
    part = dialstring.split(",", 1)[0].split("&", 1)[0]
    part = part.split("/", 1)[1] if "/" in part else part
    return part.split("@", 1)[0][:64]


def address_of(remote: str) -> str:
    """`IPV4/UDP/203.0.113.5/5060` or `sip:1001@203.0.113.5:5060` -> the bare address."""
    if remote.upper().startswith(("IPV4/", "IPV6/")):
        parts = remote.rsplit("/", 1)[0].split("/")
        return parts[-1].split("%", 1)[0]
    host = remote.split("@", 1)[-1].split(";", 1)[0]
    if host.startswith("sip:") or host.startswith("sips:"):
        host = host.split(":", 1)[1]
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LiveTracker:
    def __init__(self, engine: FraudEngine) -> None:
        self.engine = engine
        self.channels: dict[str, _Chan] = {}  # by Uniqueid
        self.last_ip: dict[str, str] = {}  # account -> last address it authenticated from
        self.seen_uids: dict[str, None] = {}  # calls checked live (a CDR of them is skipped)
        self.counters = {"events": 0, "calls": 0, "dropped_channels": 0, "cdr_only": 0}

    def feed(self, name: str, get: Get, now: float) -> list[Hit]:
        """One AMI event; returns the rule hits it caused."""
        self.counters["events"] += 1
        ts = get("Timestamp")
        if ts:
            try:
                now = float(ts)
            except ValueError:
                pass
        handler = _HANDLERS.get(name.lower())
        return handler(self, get, now) if handler is not None else []

    def _newchannel(self, get: Get, now: float) -> list[Hit]:
        uid = (get("Uniqueid") or "")[:150]
        if not uid:
            return []
        if len(self.channels) >= MAX_CHANNELS:
            del self.channels[next(iter(self.channels))]
            self.counters["dropped_channels"] += 1
        channel = (get("Channel") or "")[:200]
        account = account_of(channel, get("AccountCode") or "", get("CallerIDNum") or "")
        self.channels[uid] = _Chan(uid, channel, account, (get("Exten") or "")[:64], now)
        return []

    def _dialbegin(self, get: Get, now: float) -> list[Hit]:
        uid = (get("Uniqueid") or "")[:150]
        if not uid:
            return []  # an Originate with no caller channel
        chan = self.channels.get(uid)
        if chan is None:
            self._newchannel(get, now)
            chan = self.channels.get(uid)
            if chan is None:
                return []
        if chan.call is not None:
            return []  # a second DialBegin of the same call (forking): already checked
        exten = get("Exten") or chan.exten
        dst = exten if exten and exten not in ("s", "<unknown>") else ""
        if not dst:
            dst = _number_in_dialstring(get("DialString") or get("AppData") or "")
        call = Call(
            uid,
            chan.account,
            dst,
            now,
            None,
            0,
            False,
            chan.channel,
            self.last_ip.get(chan.account, ""),
        )
        chan.call = call
        self.counters["calls"] += 1
        self.seen_uids[uid] = None
        if len(self.seen_uids) > 4 * MAX_CHANNELS:
            del self.seen_uids[next(iter(self.seen_uids))]
        return self.engine.call_started(call)

    def _answered(self, get: Get, now: float) -> list[Hit]:
        if (get("Event") or "").lower() == "dialend" and get("DialStatus") != "ANSWER":
            return []
        chan = self.channels.get(get("Uniqueid") or "")
        if chan is not None and chan.call is not None and not chan.call.answered:
            chan.call.answered = True
            chan.call.answer = now
        return []

    def _hangup(self, get: Get, now: float) -> list[Hit]:
        chan = self.channels.pop(get("Uniqueid") or "", None)
        if chan is None or chan.call is None:
            return []
        call = chan.call
        call.end = now
        call.billsec = max(0.0, now - call.answer) if call.answer is not None else 0.0
        return self.engine.call_ended(call)

    def _cdr(self, get: Get, now: float) -> list[Hit]:
        uid = get("UniqueID") or ""
        if not uid or uid in self.seen_uids:
            return []
        try:
            duration = int(get("Duration") or 0)
            billsec = int(get("BillableSeconds") or 0)
        except ValueError:
            return []
        self.counters["cdr_only"] += 1
        channel = get("Channel") or ""
        account = account_of(channel, get("AccountCode") or "", get("Source") or "")
        call = Call(
            uid[:150],
            account,
            (get("Destination") or "")[:64],
            now - duration,
            now,
            billsec,
            get("Disposition") == "ANSWERED",
            channel[:200],
        )
        return self.engine.cdr_call(call)

    def _cel(self, get: Get, now: float) -> list[Hit]:
        """CEL over AMI (cel_manager.c): the same call life in other words."""
        kind = (get("EventName") or "").upper()
        if kind == "CHAN_START":
            return self._newchannel(get, now)
        if kind == "APP_START" and (get("Application") or "").lower() == "dial":
            return self._dialbegin(get, now)
        if kind == "ANSWER":
            return self._answered(get, now)
        if kind == "HANGUP":
            return self._hangup(get, now)
        return []

    def _seen(self, account: str, remote: str, now: float) -> list[Hit]:
        ip = address_of(remote)
        if not account or not ip:
            return []
        self.last_ip[account] = ip
        if len(self.last_ip) > MAX_CHANNELS:
            del self.last_ip[next(iter(self.last_ip))]
        return self.engine.seen_address(account, ip, now)

    def _auth(self, get: Get, now: float) -> list[Hit]:
        if (get("Service") or "").upper() == "AMI":
            return []
        return self._seen((get("AccountID") or "")[:80], get("RemoteAddress") or "", now)

    def _contact(self, get: Get, now: float) -> list[Hit]:
        if (get("ContactStatus") or "") not in ("Created", "Reachable", "Updated"):
            return []
        account = get("EndpointName") or get("AOR") or ""
        return self._seen(account[:80], get("URI") or "", now)

    def _peer(self, get: Get, now: float) -> list[Hit]:
        if (get("PeerStatus") or "") != "Registered":
            return []
        account = (get("Peer") or "").partition("/")[2]
        return self._seen(account[:80], get("Address") or "", now)


_HANDLERS: dict[str, Callable[[LiveTracker, Get, float], list[Hit]]] = {
    "newchannel": LiveTracker._newchannel,
    "dialbegin": LiveTracker._dialbegin,
    "dialend": LiveTracker._answered,
    "bridgeenter": LiveTracker._answered,
    "hangup": LiveTracker._hangup,
    "cdr": LiveTracker._cdr,
    "cel": LiveTracker._cel,
    "successfulauth": LiveTracker._auth,
    "contactstatus": LiveTracker._contact,
    "peerstatus": LiveTracker._peer,
}
