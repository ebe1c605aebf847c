"""SIP transactions over a Transport: send a request, gather the answers, never leave a call up.

`SipClient.invite` is the only way the probe places a call, and it enforces the rule the issue
states: CANCEL at the first provisional answer beyond 100 Trying (or when only 100 came and the
grace time ran out), ACK and BYE at once if a 200 slips through anyway.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sipguard.core.sip import SipMessage, SipParseError, parse_message
from sipguard.probe.model import Evidence
from sipguard.probe.request import Request, ack_for, bye_for, cancel_for
from sipguard.probe.transport import Transport

__all__ = ["Answer", "SipClient", "Target"]


@dataclass(frozen=True, slots=True)
class Target:
    host: str  # an address (the probe never resolves names itself)
    port: int
    transport: str = "udp"
    domain: str | None = None  # the host part of URIs; the address when None

    @property
    def uri_host(self) -> str:
        if self.domain:
            return self.domain
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 5060 else f"{host}:{self.port}"

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass
class Answer:
    """One transaction (with its CANCEL/ACK/BYE): every request sent and every answer received."""

    request: Request
    sent: list[bytes] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    messages: list[SipMessage] = field(default_factory=list)
    delay: float | None = None  # seconds until the first answer
    cancelled: bool = False
    answered: bool = False  # a 200 to the INVITE came (and was hung up)

    @property
    def statuses(self) -> list[int]:
        return [m.status for m in self.messages if m.status is not None and self._ours(m)]

    @property
    def final(self) -> SipMessage | None:
        for m in self.messages:
            if m.status is not None and m.status >= 200 and self._ours(m):
                return m
        return None

    @property
    def status(self) -> int | None:
        final = self.final
        if final is not None:
            return final.status
        statuses = self.statuses
        return statuses[-1] if statuses else None

    def first(self, *codes: int) -> SipMessage | None:
        for m in self.messages:
            if m.status in codes and self._ours(m):
                return m
        return None

    def _ours(self, m: SipMessage) -> bool:
        try:
            cseq = m.cseq
        except SipParseError:
            return False
        return cseq is not None and cseq[1] == self.request.method

    def evidence(self) -> Evidence:
        def text(items: Sequence[bytes]) -> str:
            return "\n".join(b.decode("utf-8", "replace") for b in items)

        return Evidence(text(self.sent), text(self.received) or "(no answer)")


def _sdp(local_ip: str) -> bytes:
    # a minimal offer; port 9 (discard) because no media ever flows: the call is never completed
    family = "IP6" if ":" in local_ip else "IP4"
    return (
        f"v=0\r\no=probe 1 1 IN {family} {local_ip}\r\ns=-\r\nc=IN {family} {local_ip}\r\n"
        "t=0 0\r\nm=audio 9 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    ).encode()


class SipClient:
    def __init__(
        self,
        transport: Transport,
        target: Target,
        now: Callable[[], float],
        timeout: float = 2.0,
        token: Callable[[], str] = lambda: secrets.token_hex(6),
    ) -> None:
        self.transport = transport
        self.target = target
        self.now = now
        self.timeout = timeout
        self.token = token
        host, port = transport.local[0], transport.local[1]
        self.local_ip = host
        self.local_hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def build(
        self,
        method: str,
        user: str | None,
        *,
        from_user: str = "sipguard-probe",
        to_user: str | None = None,
        domain: str | None = None,
        extra: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        cseq: int = 1,
        call_id: str | None = None,
        from_tag: str | None = None,
    ) -> Request:
        host = domain or self.target.uri_host
        uri = f"sip:{user}@{host}" if user else f"sip:{host}"
        to_uri = f"sip:{to_user}@{host}" if to_user else uri
        return Request(
            method=method,
            uri=uri,
            via=f"SIP/2.0/{self.transport.name.upper()} {self.local_hostport}",
            branch="z9hG4bK" + self.token(),
            from_addr=f"<sip:{from_user}@{host}>",
            from_tag=from_tag or self.token(),
            to_addr=f"<{to_uri}>",
            call_id=call_id or f"{self.token()}@sipguard-probe",
            cseq=cseq,
            extra=(("Contact", f"<sip:{from_user}@{self.local_hostport}>"), *extra),
            body=body,
        )

    def offer(self) -> bytes:
        return _sdp(self.local_ip)

    def _send(self, answer: Answer, request: Request) -> None:
        data = request.encode()
        answer.sent.append(data)
        self.transport.send(data)

    def _receive(self, answer: Answer, began: float, deadline: float) -> SipMessage | None:
        """The next answer to this Call-ID before `deadline`, or None."""
        while True:
            left = deadline - self.now()
            if left <= 0:
                return None
            data = self.transport.recv(left)
            if data is None:
                return None
            try:
                msg = parse_message(data)
            except SipParseError:
                answer.received.append(data)  # garbage is evidence too
                continue
            if msg.is_request or msg.call_id != answer.request.call_id:
                continue  # stale answers of an earlier transaction, or a request to us
            answer.received.append(data)
            answer.messages.append(msg)
            if answer.delay is None:
                answer.delay = self.now() - began
            return msg

    def request(self, request: Request) -> Answer:
        """A non-INVITE transaction: send, then wait for the final answer (or the timeout)."""
        answer = Answer(request)
        began = self.now()
        self._send(answer, request)
        deadline = began + self.timeout
        while (msg := self._receive(answer, began, deadline)) is not None:
            if msg.status is not None and msg.status >= 200 and answer._ours(msg):
                break
        return answer

    def invite(self, request: Request, grace: float = 3.0) -> Answer:
        """An INVITE that can never turn into a call (see the module docstring)."""
        answer = Answer(request)
        began = self.now()
        self._send(answer, request)
        deadline = began + self.timeout
        trying_deadline: float | None = None
        while True:
            limit = deadline if trying_deadline is None else min(deadline, trying_deadline)
            msg = self._receive(answer, began, limit)
            if msg is None:
                if trying_deadline is not None and not answer.cancelled and answer.final is None:
                    # only 100 Trying came: stop what may be ringing somewhere
                    self._cancel(answer)
                    deadline = self.now() + self.timeout
                    trying_deadline = None
                    continue
                break
            status = msg.status or 0
            if not answer._ours(msg):
                continue  # the 200 to our CANCEL
            if status == 100 and trying_deadline is None and not answer.cancelled:
                trying_deadline = self.now() + grace
                deadline = max(deadline, trying_deadline)
            elif 100 < status < 200 and not answer.cancelled:
                self._cancel(answer)
                deadline = self.now() + self.timeout
                trying_deadline = None
            elif 200 <= status < 300:
                answer.answered = True
                self._send(answer, ack_for(request, msg, "z9hG4bK" + self.token()))
                self._send(answer, bye_for(request, msg, "z9hG4bK" + self.token()))
                self._drain(answer, began)
                break
            elif status >= 300:
                self._send(answer, ack_for(request, msg, ""))
                break
        return answer

    def _cancel(self, answer: Answer) -> None:
        answer.cancelled = True
        self._send(answer, cancel_for(answer.request))

    def _drain(self, answer: Answer, began: float) -> None:
        # the answer to the BYE, so it is part of the evidence
        deadline = self.now() + self.timeout
        while self._receive(answer, began, deadline) is not None:
            pass
