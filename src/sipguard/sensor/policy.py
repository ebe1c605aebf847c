"""The sensor's verdict on one SIP message or TLS ClientHello (pure: no I/O, time passed in).

Order of checks, first match wins:
  1. trusted source (trunk allow-list)      -> accept, untouched
  2. not SIP                                 -> drop, MALFORMED_REQUEST
  3. response / in-dialog request of a dialog an accepted request (or the PBX) started -> accept
  4. response to nothing we know             -> drop, SENSOR_DROP "unsolicited_response"
  5. scanner user agent                      -> drop, SCANNER_PROBE
  6. Request-URI host or To host not a secret domain -> drop, SENSOR_DROP "wrong_domain"
  7. over the per-source per-method rate     -> drop, SENSOR_DROP "rate_limit METHOD"
  8. accept, and remember the dialog.
Drops are silent (no SIP response): a scanner learns nothing. Every drop bumps a counter and
yields an Event so the rule engine can ban repeat offenders.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from sipguard.core.events import Event, IPAddress, Kind, Origin, Service
from sipguard.core.sip import (
    Limits,
    SipMessage,
    SipParseError,
    header_tag,
    parse_message,
    parse_name_addr,
    parse_uri,
)
from sipguard.core.tls import TlsIncomplete, TlsParseError, client_hello_sni
from sipguard.sensor.config import SensorConfig
from sipguard.sensor.fastpath import scan_head
from sipguard.sensor.state import DialogTable, TokenBuckets

__all__ = ["ACCEPT", "SensorPolicy", "Verdict"]


@dataclass(frozen=True, slots=True)
class Verdict:
    accept: bool
    reason: str  # counter name: "accepted", "trusted", "in_dialog", "wrong_domain", ...
    event: Event | None = None


ACCEPT = Verdict(True, "accepted")
_TRUSTED = Verdict(True, "trusted")
_IN_DIALOG = Verdict(True, "in_dialog")
_RESPONSE = Verdict(True, "response")

_TEXT_MAX = 200  # bytes of attacker text kept in an event
_NO_LINE = Origin("sensor", 0, "")


def _host(host: str | None) -> str | None:
    # "example.com." is the same name as "example.com" (the config strips the dot too)
    return host[:-1] if host and host.endswith(".") else host


class SensorPolicy:
    def __init__(
        self, config: SensorConfig, limits: Limits | None = None, *, fast_path: bool = True
    ) -> None:
        self.config = config
        # fast_path=False judges every message through the full parser (tests compare the two)
        self.fast_path = fast_path
        self.limits = limits or Limits()
        self.domains = config.domains
        self.counters: Counter[str] = Counter()
        self.buckets = TokenBuckets(config.rates, config.max_sources)
        self.dialogs = DialogTable(config.max_dialogs, config.dialog_ttl)
        # signatures are plain substrings (case-insensitive): a loop of `in` tests on the
        # lower-cased text is ~10x faster than one big IGNORECASE alternation regex, and the
        # answers per User-Agent are memoized because a PBX sees a few dozen distinct ones
        self._sigs = tuple(dict.fromkeys(s.lower() for s in config.signatures if s))
        self._sig_cache: dict[str, str | None] = {}
        self._block_scanners = config.block_scanners and bool(self._sigs)
        # trusted networks as integer ranges: a membership test per packet must be cheap
        self._trusted = [
            (net.version, int(net.network_address), int(net.broadcast_address))
            for net in config.trusted
        ]

    # --- helpers -----------------------------------------------------------------------------
    def is_trusted(self, ip: IPAddress) -> bool:
        if not self._trusted:
            return False
        value, version = int(ip), ip.version
        return any(v == version and lo <= value <= hi for v, lo, hi in self._trusted)

    def scanner_signature(self, text: str | None) -> str | None:
        if text is None or not self._block_scanners:
            return None
        cache = self._sig_cache
        if text in cache:
            return cache[text]
        low = text.lower()
        found = next((sig for sig in self._sigs if sig in low), None)
        if len(cache) >= 4096:
            cache.clear()
        cache[text] = found
        return found

    def _drop(
        self,
        kind: Kind,
        reason: str,
        detail: str,
        ip: IPAddress,
        port: int,
        transport: str,
        now: float,
        msg: tuple[str | None, str | None, str | None] | None = None,
        line: str = "",
    ) -> Verdict:
        self.counters[reason] += 1
        self.counters["dropped"] += 1
        target, user_agent, call_id = msg or (None, None, None)
        event = Event(
            time=now,
            kind=kind,
            service=Service.SENSOR,
            ip=ip,
            port=port,
            transport=transport,
            # attacker text, clipped (inline: a flood is mostly drops)
            target=None if target is None else target[:_TEXT_MAX],
            user_agent=None if user_agent is None else user_agent[:_TEXT_MAX],
            call_id=None if call_id is None else call_id[:_TEXT_MAX],
            detail=detail,
            # Origin is immutable: every drop without a line shares one
            origin=Origin("sensor", 0, line[:_TEXT_MAX]) if line else _NO_LINE,
        )
        return Verdict(False, reason, event)

    # --- SIP --------------------------------------------------------------------------------
    def check_sip(
        self,
        data: bytes,
        ip: IPAddress,
        port: int,
        now: float,
        transport: str = "udp",
        stream: bool = False,
    ) -> Verdict:
        """Verdict on one inbound SIP message (a UDP payload or one framed TCP message)."""
        self.counters["seen"] += 1
        if self._trusted and self.is_trusted(ip):  # no call per packet without trunks
            self.counters["trusted"] += 1
            return _TRUSTED
        head = scan_head(data, self.limits, stream) if self.fast_path else None
        if head is not None:
            # the fast path: an ordinary message, read without building a SipMessage. The
            # checks raise before they change any state, so on an error the full parser
            # below judges the message from scratch and names the reason.
            try:
                return self._judge(*head, ip, port, now, transport)
            except SipParseError:
                self.counters["fast_path_fallback"] += 1
        try:
            msg = parse_message(data, self.limits, stream=stream)
            return self._check_message(msg, ip, port, now, transport)
        except SipParseError as exc:
            return self.malformed(exc.reason, data, ip, port, now, transport)

    def malformed(
        self, reason: str, data: bytes, ip: IPAddress, port: int, now: float, transport: str
    ) -> Verdict:
        """Drop input that is not SIP; the event keeps its first line (bounded) as evidence."""
        first = data[:_TEXT_MAX].split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
        return self._drop(
            Kind.MALFORMED_REQUEST, "malformed", reason, ip, port, transport, now, line=first
        )

    def _check_message(
        self, msg: SipMessage, ip: IPAddress, port: int, now: float, transport: str
    ) -> Verdict:
        return self._judge(
            msg.method, msg.request_uri, msg.call_id, msg.header("from"), msg.header("to"),
            msg.user_agent, ip, port, now, transport,
        )  # fmt: skip

    def _judge(
        self,
        method: str | None,
        request_uri: str | None,
        call_id: str | None,
        from_hdr: str | None,
        to_hdr: str | None,
        user_agent: str | None,
        ip: IPAddress,
        port: int,
        now: float,
        transport: str,
    ) -> Verdict:
        """Steps 3-8 on the values the policy reads (from the fast path or a SipMessage).
        Raises SipParseError before any state changes, so a caller may retry another way."""
        if call_id is None:
            raise SipParseError("missing_call_id")
        if from_hdr is None or to_hdr is None:
            raise SipParseError("missing_from_to")
        msg = (request_uri, user_agent, call_id)  # what a drop event keeps
        tags = (header_tag(from_hdr), header_tag(to_hdr))
        if method is None:
            if self.dialogs.known(call_id, now):
                self.counters["response"] += 1
                return _RESPONSE
            return self._drop(
                Kind.SENSOR_DROP, "unsolicited_response", "unsolicited_response",
                ip, port, transport, now, msg,
            )  # fmt: skip
        if self.dialogs.matches(call_id, tags, now):
            self.counters["in_dialog"] += 1
            return _IN_DIALOG
        sig = self.scanner_signature(user_agent) or self.scanner_signature(
            from_hdr[: from_hdr.find("<")] if "<" in from_hdr else None
        )
        if sig is not None:
            return self._drop(
                Kind.SCANNER_PROBE, "scanner", f"scanner_user_agent {sig}",
                ip, port, transport, now, msg,
            )  # fmt: skip
        if self.domains:
            if request_uri is None:
                raise SipParseError("not_a_request")
            uri_host = _host(parse_uri(request_uri).host)
            to_host = _host(parse_name_addr(to_hdr).uri.host)
            if uri_host not in self.domains or to_host not in self.domains:
                host = uri_host if uri_host not in self.domains else to_host
                return self._drop(
                    Kind.SENSOR_DROP, "wrong_domain", f"wrong_domain {host}",
                    ip, port, transport, now, msg,
                )  # fmt: skip
        if not self.buckets.take(ip, method, now):
            return self._drop(
                Kind.SENSOR_DROP, "rate_limit", f"rate_limit {method}",
                ip, port, transport, now, msg,
            )  # fmt: skip
        self.dialogs.add(call_id, tags, now)
        self.counters["accepted"] += 1
        return ACCEPT

    def note_outbound(self, data: bytes, now: float) -> None:
        """The PBX sent this: remember its dialog so the peer's answers come back in."""
        try:
            msg = parse_message(data, self.limits)
            call_id, frm = msg.call_id, msg.header("from")
            if call_id is not None and frm is not None:
                to = msg.header("to")
                tags = (header_tag(frm), header_tag(to))
                self.dialogs.add(call_id, tags, now)
                self.counters["outbound"] += 1
        except SipParseError:
            self.counters["outbound_malformed"] += 1

    # --- TLS --------------------------------------------------------------------------------
    def check_tls(self, data: bytes, ip: IPAddress, port: int, now: float) -> Verdict | None:
        """Verdict on the first bytes of a TLS connection; None while the ClientHello is
        incomplete (the caller lets those segments through and keeps the bytes)."""
        if self.is_trusted(ip):
            self.counters["trusted"] += 1
            return _TRUSTED
        try:
            sni = client_hello_sni(data)
        except TlsIncomplete:
            return None
        except TlsParseError as exc:
            return self._drop(
                Kind.MALFORMED_REQUEST, "malformed_tls", f"tls {exc.reason}",
                ip, port, "tls", now,
            )  # fmt: skip
        if self.domains and (sni is None or sni not in self.domains):
            return self._drop(
                Kind.SENSOR_DROP, "wrong_sni", f"tls_sni {sni or 'absent'}", ip, port, "tls", now
            )
        self.counters["tls_accepted"] += 1
        return ACCEPT

    def expire(self, now: float) -> None:
        self.buckets.expire(now)
        self.dialogs.expire(now)


def parse_ip(packed: bytes) -> IPAddress:
    """4 or 16 raw bytes to an address (the adapter's helper, kept beside the policy)."""
    return IPv4Address(packed) if len(packed) == 4 else IPv6Address(packed)
