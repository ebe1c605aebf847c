"""The one normalized event that crosses every boundary in sipguard.

Every source (log line, AMI event, SIP packet, CDR row) becomes zero or more `Event`s. Rules,
policy, store and faces only ever see this type, so a new source never touches the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, ip_address

IPAddress = IPv4Address | IPv6Address


class Kind(StrEnum):
    """What happened. Attack kinds first, then context kinds."""

    WRONG_PASSWORD = "wrong_password"
    UNKNOWN_ACCOUNT = "unknown_account"
    AUTH_NAME_MISMATCH = "auth_name_mismatch"
    ACL_DENIED = "acl_denied"
    CALL_REJECTED = "call_rejected"
    REQUEST_NOT_ALLOWED = "request_not_allowed"
    MALFORMED_REQUEST = "malformed_request"
    SCANNER_PROBE = "scanner_probe"
    CHALLENGE_UNANSWERED = "challenge_unanswered"
    AMI_LOGIN_FAILED = "ami_login_failed"
    LIMIT = "limit"
    LOG_TAMPERING = "log_tampering"
    SENSOR_DROP = "sensor_drop"
    TOLL_FRAUD = "toll_fraud"  # a working account used for abuse (fraud detectors)
    WEB_LOGIN_FAILED = "web_login_failed"  # a wrong password on sipguard's own dashboard
    # context, not attacks on their own
    CHALLENGE_SENT = "challenge_sent"
    AUTH_SUCCESS = "auth_success"
    AMI_LOGIN_SUCCESS = "ami_login_success"
    # calls (core.calls): what the fraud rules look at; `call` holds the call's facts
    CALL_START = "call_start"  # an account dials out (checked before it connects)
    CALL_ANSWER = "call_answer"  # the dialled side answered: running cost starts
    CALL_END = "call_end"  # hung up, or a finished call's record (CDR)


#: Kinds that are failures charged to the source. Successes and challenges are context.
ATTACK_KINDS: frozenset[Kind] = frozenset(
    {
        Kind.WRONG_PASSWORD,
        Kind.UNKNOWN_ACCOUNT,
        Kind.AUTH_NAME_MISMATCH,
        Kind.ACL_DENIED,
        Kind.CALL_REJECTED,
        Kind.REQUEST_NOT_ALLOWED,
        Kind.MALFORMED_REQUEST,
        Kind.SCANNER_PROBE,
        Kind.CHALLENGE_UNANSWERED,
        Kind.AMI_LOGIN_FAILED,
        Kind.LOG_TAMPERING,
        Kind.SENSOR_DROP,
        Kind.TOLL_FRAUD,
        Kind.WEB_LOGIN_FAILED,
    }
)


class Service(StrEnum):
    """Which Asterisk part (or sipguard part) reported the event."""

    CHAN_SIP = "chan_sip"
    PJSIP = "pjsip"
    IAX2 = "iax2"
    AMI = "ami"
    SECURITY = "security"  # the security log, when the Service field is unknown
    PJPROJECT = "pjproject"
    SENSOR = "sensor"
    WEB = "web"  # sipguard's dashboard
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an event came from, so every decision can be explained down to the line."""

    source: str  # file path, "ami", "sensor", "-" for stdin
    line_no: int = 0
    text: str = ""  # the raw line (bounded by the parser), for `explain`


NO_ORIGIN = Origin("")


@dataclass(frozen=True, slots=True)
class CallInfo:
    """The facts of one call that an Event of a CALL_* kind carries (times in POSIX seconds).

    `record`: the event is a finished call's record (a CDR row, AMI `Cdr`), not the end of a
    call followed live from its dial.
    """

    uid: str  # Asterisk's Uniqueid (or `file:line` for a CDR without one)
    channel: str = ""
    start: float = 0.0
    answer: float | None = None
    end: float | None = None
    billsec: float = 0.0
    answered: bool = False
    record: bool = False
    line_no: int = 0
    context: str = ""  # the dialplan context the call started in (its direction: inbound?)
    # Destination facts the fraud edge (fraud/, which has phonenumbers, the hotlist and the
    # rates) fills in before detection, so the fraud rule kinds in detect/ only read fields.
    # Not in to_dict: they are derived from the dialled number, not observed.
    dest: str = ""  # the dialled number in E.164 ("" when it is not a number)
    risky: str = ""  # why the destination itself is risky ("" when it is not)
    scope: str = ""  # internal | national | international | invalid
    country: str = ""  # the destination's ISO country ("001": non-geographic), "" unknown
    dest_type: str = ""  # fixed, mobile, premium_rate, satellite, ...
    hours_scoped: bool = False  # in the after-hours rule's scopes (international, premium...)
    weekday: int = -1  # the call's start in the office's zone: 0 = Monday, -1 unknown
    minute: int = -1  # ... and its minute of the day
    ip_country: str = ""  # the country of the caller's address ("" private or unknown)
    ip_point: tuple[float, float] | None = None  # that country's (latitude, longitude)
    rate: float = 0.0  # the destination's cost per minute (0.0: no rate known)
    range_key: str = ""  # the destination's number range (short-call bursts)
    day: int = -1  # the day the call started in the office's zone (a day number), -1 unknown

    def to_dict(self) -> dict[str, object]:
        return {
            "uid": self.uid,
            "channel": self.channel,
            "start": self.start,
            "answer": self.answer,
            "end": self.end,
            "billsec": self.billsec,
            "answered": self.answered,
            "record": self.record,
            "line": self.line_no,
            "context": self.context,
        }


@dataclass(frozen=True, slots=True)
class Event:
    """One normalized security-relevant happening.

    `ip` is always the socket address Asterisk (or the sensor) saw, never text the caller
    controls (From, To, Contact, Call-ID). It is None when the line carries no address and
    nothing could tie it to one: such events are counted but never bannable.
    """

    time: float  # POSIX seconds, UTC
    kind: Kind
    service: Service
    ip: IPAddress | None = None
    port: int | None = None
    transport: str | None = None  # "udp", "tcp", "tls", "ws", "wss"
    account: str | None = None  # the account/user tried
    target: str | None = None  # dialled extension or Request-URI
    user_agent: str | None = None  # User-Agent, or the From display name when that is all we have
    call_id: str | None = None  # SIP Call-ID / SecurityEvent SessionID
    detail: str = ""  # the reason as Asterisk gave it ("Wrong password", "FailedACL", ...)
    origin: Origin = field(default=NO_ORIGIN)
    call: CallInfo | None = None  # CALL_* kinds only

    @property
    def is_attack(self) -> bool:
        return self.kind in ATTACK_KINDS

    def with_address(self, ip: IPAddress, port: int | None, transport: str | None) -> Event:
        """The same event, tied to the address that another line revealed."""
        return replace(self, ip=ip, port=port, transport=transport or self.transport)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (the control API, the store and `--format json` use this)."""
        out: dict[str, object] = {
            "time": self.time,
            "kind": self.kind.value,
            "service": self.service.value,
            "ip": str(self.ip) if self.ip is not None else None,
            "port": self.port,
            "transport": self.transport,
            "account": self.account,
            "target": self.target,
            "user_agent": self.user_agent,
            "call_id": self.call_id,
            "detail": self.detail,
            "origin": {
                "source": self.origin.source,
                "line": self.origin.line_no,
                "text": self.origin.text,
            },
        }
        if self.call is not None:  # only call events have the key: others' JSON is unchanged
            out["call"] = self.call.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Event:
        origin = d.get("origin") or {}
        assert isinstance(origin, dict)
        ip = d.get("ip")
        port = d.get("port")
        return cls(
            time=float(d["time"]),  # type: ignore[arg-type]
            kind=Kind(str(d["kind"])),
            service=Service(str(d["service"])),
            ip=ip_address(str(ip)) if ip else None,
            port=int(port) if isinstance(port, int | str) and port != "" else None,
            transport=_opt_str(d.get("transport")),
            account=_opt_str(d.get("account")),
            target=_opt_str(d.get("target")),
            user_agent=_opt_str(d.get("user_agent")),
            call_id=_opt_str(d.get("call_id")),
            detail=str(d.get("detail") or ""),
            origin=Origin(
                str(origin.get("source", "")),
                int(origin.get("line", 0)),
                str(origin.get("text", "")),
            ),
            call=_call(d.get("call")),
        )


def _call(d: object) -> CallInfo | None:
    if not isinstance(d, dict):
        return None
    answer, end = d.get("answer"), d.get("end")
    return CallInfo(
        uid=str(d.get("uid", ""))[:150],
        channel=str(d.get("channel", ""))[:200],
        start=float(d.get("start") or 0.0),
        answer=float(answer) if isinstance(answer, int | float) else None,
        end=float(end) if isinstance(end, int | float) else None,
        billsec=float(d.get("billsec") or 0.0),
        answered=bool(d.get("answered", False)),
        record=bool(d.get("record", False)),
        line_no=int(d.get("line") or 0),
        context=str(d.get("context", ""))[:80],
    )


def _opt_str(v: object) -> str | None:
    return None if v is None else str(v)
