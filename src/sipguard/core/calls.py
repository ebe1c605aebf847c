"""Call events: AMI call events and CDR records normalized into `Event`s (sans-I/O, pure).

AMI events used (field names as Asterisk 12+ sends them, main/manager_channels.c):
- `Newchannel`: a channel exists (Channel, Uniqueid, Exten, AccountCode, CallerIDNum);
- `DialBegin`: the caller's channel dials out; the caller's `Exten` is what was dialled
  (falling back to the DialString's number): a CALL_START, so the rules run before it connects;
- `DialEnd` (DialStatus ANSWER) / `BridgeEnter`: CALL_ANSWER, running cost starts;
- `Hangup`: CALL_END of a call followed since its dial; a call that never dialled out (its
  first channel, `Linkedid` = `Uniqueid`: an IVR, a voicemail box, a DID whose phone is
  offline, a number the dialplan refused) ends as a CALL_END `record`, as its CDR would;
- `Cdr` (cdr_manager): CALL_END `record` of a finished call that was not followed live;
- `CEL` (cel_manager): CHAN_START, APP_START of Dial, ANSWER and HANGUP, as the above;
- `SuccessfulAuth` (security), `ContactStatus` (PJSIP), `PeerStatus` (chan_sip): AUTH_SUCCESS,
  an account registered or authenticated from an address.
With `timestampevents=yes` an event's `Timestamp` is used instead of the arrival time. Every
field is cut to a bound; an event that cannot be read is counted (`counters["malformed"]`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import ip_address

from sipguard.core.events import CallInfo, Event, IPAddress, Kind, Origin, Service

Get = Callable[[str], "str | None"]  # case-insensitive field lookup of one AMI event
MAX_CHANNELS = 20_000  # tracked channels; beyond this the oldest are dropped (counted)
MAX_UID, MAX_CHANNEL, MAX_DST, MAX_ACCOUNT, MAX_CONTEXT = 150, 200, 64, 80, 80
_TECHS = frozenset({"SIP", "PJSIP", "IAX2", "DAHDI", "WEBRTC"})
_AMI = Origin("ami")


def account_of(channel: str, accountcode: str = "", src: str = "") -> str:
    """The calling endpoint: `PJSIP/1001-0000001a` -> `1001`, else the accountcode or src.

    Local channels (`Local/100@ctx-0001;1`) are not endpoints, so they fall through too.
    """
    tech, _, rest = channel.partition("/")
    if rest and tech.upper() in _TECHS:
        name, dash, _suffix = rest.rpartition("-")
        name = name if dash else rest
        if name:
            return name[:MAX_ACCOUNT]
    return (accountcode or src)[:MAX_ACCOUNT]


def number_in_dialstring(dialstring: str) -> str:
    """`trunk/0044…`, `PJSIP/0044…@trunk`, `0044…@trunk` -> `0044…`."""
    part = dialstring.split(",", 1)[0].split("&", 1)[0]
    part = part.split("/", 1)[1] if "/" in part else part
    return part.split("@", 1)[0][:MAX_DST]


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


def record_event(
    uid: str,
    account: str,
    dst: str,
    start: float,
    end: float | None,
    billsec: float,
    answered: bool,
    channel: str,
    ip: str,
    line_no: int,
    source: str,
    context: str = "",
) -> Event:
    """A finished call's record (a CDR row: `CdrParser.records`) as a CALL_END event."""
    return Event(
        time=end if end is not None else start,
        kind=Kind.CALL_END,
        service=Service.UNKNOWN,
        ip=_ip(ip),
        account=account[:MAX_ACCOUNT],
        target=dst[:MAX_DST],
        call_id=uid[:MAX_UID],
        origin=Origin(source, line_no),
        call=CallInfo(
            uid[:MAX_UID],
            channel[:MAX_CHANNEL],
            start,
            None,
            end,
            billsec,
            answered,
            record=True,
            line_no=line_no,
            context=context[:MAX_CONTEXT],
        ),
    )


def _ip(text: str) -> IPAddress | None:
    if not text:
        return None
    try:
        return ip_address(text[:64])
    except ValueError:
        return None


@dataclass(slots=True)
class _Chan:
    channel: str
    account: str
    exten: str
    start: float
    context: str = ""  # where the channel entered the dialplan
    first: bool = False  # the call's first channel (Linkedid = Uniqueid), not a dialled leg
    dst: str | None = None  # set once it dials out
    answer: float | None = None


class CallNormalizer:
    """AMI events to call events; tracks the channels it needs to, bounded."""

    def __init__(self, max_channels: int = MAX_CHANNELS) -> None:
        self.max_channels = max_channels
        self.channels: dict[str, _Chan] = {}  # by Uniqueid
        self.seen_uids: dict[str, None] = {}  # calls followed live (a CDR of them is skipped)
        self.counters = {
            "events": 0,
            "calls": 0,
            "dropped_channels": 0,
            "cdr_only": 0,
            "undialled": 0,
            "malformed": 0,
        }

    def feed(self, name: str, get: Get, now: float) -> list[Event]:
        """One AMI event (its name and field lookup); the call events it makes."""
        self.counters["events"] += 1
        ts = get("Timestamp")
        if ts:
            try:
                now = float(ts)
            except ValueError:
                self.counters["malformed"] += 1
        handler = _HANDLERS.get(name.lower())
        return handler(self, get, now) if handler is not None else []

    def _newchannel(self, get: Get, now: float) -> list[Event]:
        uid = (get("Uniqueid") or "")[:MAX_UID]
        if not uid:
            self.counters["malformed"] += 1
            return []
        if len(self.channels) >= self.max_channels:
            del self.channels[next(iter(self.channels))]
            self.counters["dropped_channels"] += 1
        channel = (get("Channel") or "")[:MAX_CHANNEL]
        account = account_of(channel, get("AccountCode") or "", get("CallerIDNum") or "")
        exten, context = (get("Exten") or "")[:MAX_DST], (get("Context") or "")[:MAX_CONTEXT]
        first = get("Linkedid") == uid  # a leg that Dial created carries its caller's
        self.channels[uid] = _Chan(channel, account, exten, now, context, first)
        if first:
            # Checked live from here on, at its dial or its hangup: its CDR row, which cdr_csv
            # often writes before the Hangup event arrives, is skipped.
            self._checked(uid)
        return []

    def _dialbegin(self, get: Get, now: float) -> list[Event]:
        uid = (get("Uniqueid") or "")[:MAX_UID]
        if not uid:
            return []  # an Originate with no caller channel
        chan = self.channels.get(uid)
        if chan is None:
            self._newchannel(get, now)
            chan = self.channels.get(uid)
            if chan is None:
                return []
        if chan.dst is not None:
            return []  # a second DialBegin of the same call (forking): already checked
        exten = get("Exten") or chan.exten
        dst = exten[:MAX_DST] if exten and exten not in ("s", "<unknown>") else ""
        if not dst:
            dst = number_in_dialstring(get("DialString") or get("AppData") or "")
        chan.dst = dst
        chan.start = now
        self.counters["calls"] += 1
        self._checked(uid)
        return [self._event(Kind.CALL_START, uid, chan, now)]

    def _checked(self, uid: str) -> None:
        """A call checked live: its CDR is skipped (bounded: the oldest are forgotten)."""
        self.seen_uids[uid] = None
        if len(self.seen_uids) > 4 * self.max_channels:
            del self.seen_uids[next(iter(self.seen_uids))]

    def _answered(self, get: Get, now: float) -> list[Event]:
        if (get("Event") or "").lower() == "dialend" and get("DialStatus") != "ANSWER":
            return []
        uid = get("Uniqueid") or ""
        chan = self.channels.get(uid)
        if chan is None or chan.dst is None or chan.answer is not None:
            return []
        chan.answer = now
        return [self._event(Kind.CALL_ANSWER, uid, chan, now)]

    def _hangup(self, get: Get, now: float) -> list[Event]:
        uid = get("Uniqueid") or ""
        chan = self.channels.pop(uid, None)
        if chan is None or (chan.dst is None and not chan.first):
            return []
        if chan.dst is None:
            # A call that never dialled out: no CALL_START ever ran the rules on it. It is
            # checked now, once, as its CDR row would be (an inbound one counts on its trunk);
            # its CDR (file or `Cdr` event) is skipped (seen since its Newchannel).
            self.counters["undialled"] += 1
            dst = chan.exten if chan.exten not in ("s", "<unknown>") else ""
            record = record_event(
                uid, chan.account, dst, chan.start, now, 0.0, False, chan.channel, "", 0,
                "ami", chan.context,
            )  # fmt: skip
            return [record]
        return [self._event(Kind.CALL_END, uid, chan, now)]

    def _event(self, kind: Kind, uid: str, chan: _Chan, now: float) -> Event:
        end = now if kind is Kind.CALL_END else None
        answer = chan.answer
        billsec = max(0.0, now - answer) if end is not None and answer is not None else 0.0
        return Event(
            time=now,
            kind=kind,
            service=Service.AMI,
            account=chan.account,
            target=chan.dst,
            call_id=uid,
            origin=_AMI,
            call=CallInfo(
                uid,
                chan.channel,
                chan.start,
                answer,
                end,
                billsec,
                answer is not None,
                context=chan.context,
            ),
        )

    def _cdr(self, get: Get, now: float) -> list[Event]:
        uid = get("UniqueID") or ""
        if not uid or uid in self.seen_uids:
            return []
        try:
            duration = int(get("Duration") or 0)
            billsec = int(get("BillableSeconds") or 0)
        except ValueError:
            self.counters["malformed"] += 1
            return []
        self.counters["cdr_only"] += 1
        channel = get("Channel") or ""
        account = account_of(channel, get("AccountCode") or "", get("Source") or "")
        dst = get("Destination") or ""
        answered = get("Disposition") == "ANSWERED"
        context = get("DestinationContext") or ""
        event = record_event(
            uid,
            account,
            dst,
            now - duration,
            now,
            billsec,
            answered,
            channel,
            "",
            0,
            "ami",
            context,
        )
        return [event]

    def _cel(self, get: Get, now: float) -> list[Event]:
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

    def _seen(self, account: str, remote: str, now: float, detail: str) -> list[Event]:
        ip = _ip(address_of(remote))
        if not account or ip is None:
            return []
        return [
            Event(
                time=now,
                kind=Kind.AUTH_SUCCESS,
                service=Service.AMI,
                ip=ip,
                account=account[:MAX_ACCOUNT],
                detail=detail,
                origin=_AMI,
            )
        ]

    def _auth(self, get: Get, now: float) -> list[Event]:
        if (get("Service") or "").upper() == "AMI":
            return []
        return self._seen(get("AccountID") or "", get("RemoteAddress") or "", now, "SuccessfulAuth")

    def _contact(self, get: Get, now: float) -> list[Event]:
        if (get("ContactStatus") or "") not in ("Created", "Reachable", "Updated"):
            return []
        account = get("EndpointName") or get("AOR") or ""
        return self._seen(account, get("URI") or "", now, "ContactStatus")

    def _peer(self, get: Get, now: float) -> list[Event]:
        if (get("PeerStatus") or "") != "Registered":
            return []
        account = (get("Peer") or "").partition("/")[2]
        return self._seen(account, get("Address") or "", now, "PeerStatus")


_HANDLERS: dict[str, Callable[[CallNormalizer, Get, float], list[Event]]] = {
    "newchannel": CallNormalizer._newchannel,
    "dialbegin": CallNormalizer._dialbegin,
    "dialend": CallNormalizer._answered,
    "bridgeenter": CallNormalizer._answered,
    "hangup": CallNormalizer._hangup,
    "cdr": CallNormalizer._cdr,
    "cel": CallNormalizer._cel,
    "successfulauth": CallNormalizer._auth,
    "contactstatus": CallNormalizer._contact,
    "peerstatus": CallNormalizer._peer,
}

__all__ = [
    "MAX_CHANNELS",
    "CallNormalizer",
    "account_of",
    "address_of",
    "number_in_dialstring",
    "record_event",
]
