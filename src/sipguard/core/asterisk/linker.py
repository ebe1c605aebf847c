"""Count attempts, not lines: dedup, linking of address-less lines, unanswered challenges.

One attempt shows up as several lines (a module's NOTICE plus its SECURITY event), in several files
(messages and security hold byte-identical SECURITY lines) and again on AMI. The Linker keeps small,
bounded, time-windowed maps to collapse them, to give address-less lines the address of the line
logged beside them, and to notice challenges that nobody answered (asterisk-formats.md §2, §5).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field, fields, replace

from sipguard.core.asterisk.candidate import LOG, SECURITY, Candidate
from sipguard.core.events import Event, IPAddress, Kind, Service

#: kinds that one attempt may be reported as, on the module's line and on its security event
FAMILY: dict[Kind, str] = {
    Kind.WRONG_PASSWORD: "auth",
    Kind.UNKNOWN_ACCOUNT: "auth",
    Kind.AUTH_NAME_MISMATCH: "auth",
    Kind.ACL_DENIED: "deny",
    Kind.REQUEST_NOT_ALLOWED: "deny",
    Kind.CALL_REJECTED: "call",
    Kind.MALFORMED_REQUEST: "malformed",
    Kind.AMI_LOGIN_FAILED: "ami",
    Kind.AUTH_SUCCESS: "success",
    Kind.AMI_LOGIN_SUCCESS: "success",
    Kind.LIMIT: "limit",
}
LOOKBACK = 0.005  # an address line logged before its address-less partner: same millisecond only
MAX_MAP = 65536
MAX_PENDING = 4096
MAX_CHALLENGES = 50000
PAIR_CAP = 4096  # waiting lines per (address, family) and side
SCAN = 64  # how far back the pending/recent lists are searched for a partner
# A security event (AMI, or the security log) that reaches us before the module's line of the same
# attempt waits this long, in event time, for that line: the line knows what the event does not
# (the From display name that names a scanner), and one attempt must be ONE event that knows
# both, whichever copy came first. Only where such a line always follows (SIP auth failures).
MERGE_WAIT = 0.25
_MERGED_SERVICES = frozenset({Service.PJSIP, Service.CHAN_SIP})


@dataclass(slots=True)
class NormalizerStats:
    lines: int = 0
    candidates: int = 0  # lines that contained a phrase worth parsing
    events: int = 0
    duplicates: int = 0  # the same attempt seen again (another file, AMI, another line)
    malformed: int = 0  # a known phrase whose grammar did not match
    too_long: int = 0
    binary: int = 0
    tampering: int = 0
    unlinked: int = 0  # address-less events that nothing tied to an address
    evicted: int = 0  # pending state dropped early because a bounded map was full
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        d.update(self.extra)
        return d


def _bounded_put(
    m: OrderedDict[tuple[object, ...], float], key: tuple[object, ...], value: float
) -> None:
    m[key] = value
    m.move_to_end(key)
    if len(m) > MAX_MAP:
        m.popitem(last=False)


def tampering(ev: Event) -> Event:
    return replace(ev, kind=Kind.LOG_TAMPERING, detail=f"injected address in line ({ev.detail})")


class Linker:
    def __init__(self, stats: NormalizerStats, link_window: float, challenge_window: float) -> None:
        self.stats = stats
        self.window = link_window
        self.challenge_window = challenge_window
        # per identity, the source that logged it once (the common case), else a flat
        # [source, count, source, count, ...]: a dict each would cost far more (65536 are kept)
        self._copies: OrderedDict[tuple[object, ...], str | list[str | int]] = OrderedDict()
        # per (ip, family): [module lines, security events] waiting for their partner. Plain lists
        # (capped at PAIR_CAP like a bounded deque) because an empty deque costs ~600 bytes and
        # tens of thousands of sources each hold two of them.
        self._pairs: OrderedDict[tuple[object, ...], list[list[float | int | str | None]]] = (
            OrderedDict()
        )
        self._pending: deque[Candidate] = deque()
        self._recent: deque[tuple[Event, str, str | None, str]] = deque(maxlen=1024)
        self._nomatch: OrderedDict[tuple[object, ...], float] = OrderedDict()
        self._ami_nouser: OrderedDict[tuple[object, ...], float] = OrderedDict()
        self._answers: OrderedDict[tuple[object, ...], float] = OrderedDict()
        self._challenges: dict[tuple[IPAddress | None, str], list[Event]] = {}
        self._challenge_queue: deque[tuple[float, tuple[IPAddress | None, str], Event]] = deque()
        self._held: deque[Event] = deque()  # security events waiting for their module line

    # -- entry ---------------------------------------------------------------------------------
    def process(self, c: Candidate) -> list[Event]:
        ev = c.event
        out: list[Event] = []
        if c.channel == SECURITY and self._is_copy(ev):
            self.stats.duplicates += 1
            return out
        if ev.ip is None:
            if not c.link:  # nothing can carry its address (chan_sip invite timeouts)
                self.stats.unlinked += 1
                out.append(ev)
            else:
                self._hold(c, out)
            return out
        ev = self._fix_kind(ev)
        merged: Candidate | None = None
        linked = False
        if c.link_name is not None:
            ev, merged, linked = self._link_forward(c, ev, out)
            self._recent.append((ev, c.link_name, c.tag, c.channel))
        self._note_answer(ev)
        # a security event merged with its address-less module line has had its pair, unless
        # the module logs one more line with the address for that attempt (username mismatch)
        paired = merged is not None and c.channel == SECURITY and not merged.followed
        if ev.kind is Kind.CHALLENGE_SENT:
            if not linked:  # a challenge that "answered" a malformed request is no flood signal
                self._challenge(ev)
        elif self._ami_repeat(ev, c.channel):
            self.stats.duplicates += 1
            return out
        elif not paired and self._paired_copy(ev, c.channel):
            self.stats.duplicates += 1
            held = self._take_held(ev) if c.channel == LOG and self._held else None
            if held is None:
                return out
            ev = _merge(held, ev)  # the one event of this attempt, knowing what both copies know
        elif not paired and c.channel == SECURITY and not c.tampered and _waits_for_line(ev):
            self._held.append(ev)
            if len(self._held) > MAX_PENDING:
                self.stats.evicted += 1
                out.append(self._held.popleft())
            return out
        out.append(ev)
        if c.tampered:
            out.append(tampering(ev))
        return out

    # -- same attempt, another copy --------------------------------------------------------------
    def _is_copy(self, ev: Event) -> bool:
        """A security event already seen from another source (messages vs security vs AMI)."""
        ident = (ev.kind, ev.detail, ev.time, ev.call_id, ev.ip, ev.port, ev.account)
        counts = self._copies.get(ident)
        src = ev.origin.source
        if counts is None:
            self._copies[ident] = src  # seen once, from src: the shared string is all we keep
            if len(self._copies) > MAX_MAP:
                self._copies.popitem(last=False)
            return False
        if isinstance(counts, str):
            counts = self._copies[ident] = [counts, 1]
        mine = 0
        at = -1
        for i in range(0, len(counts), 2):
            if counts[i] == src:
                mine, at = counts[i + 1], i  # type: ignore[assignment]
        if at < 0:
            counts += [src, 1]
        else:
            counts[at + 1] = mine + 1
        return any(
            counts[i + 1] > mine  # type: ignore[operator]
            for i in range(0, len(counts), 2)
            if counts[i] != src
        )

    def _paired_copy(self, ev: Event, channel: str) -> bool:
        """A module line and the security event of the same attempt pair up one to one.

        Each side is a flat list of (time, port, call_id) triples: no tuple per waiting line.
        """
        fam = FAMILY.get(ev.kind)
        if fam is None:
            return False
        key = (ev.ip, fam)
        slot = self._pairs.get(key)
        if slot is None:
            slot = self._pairs[key] = [[], []]
            if len(self._pairs) > MAX_MAP:
                self._pairs.popitem(last=False)
        else:
            self._pairs.move_to_end(key)
        mine = 0 if channel == LOG else 1
        other = slot[1 - mine]
        now = ev.time
        horizon = now - self.window
        if other and other[0] < horizon:  # type: ignore[operator]
            drop = 3
            while drop < len(other) and other[drop] < horizon:  # type: ignore[operator]
                drop += 3
            del other[:drop]
        port, call_id = ev.port, ev.call_id
        for k in range(0, min(len(other), 24), 3):  # the 8 oldest waiting lines
            if self._same_attempt(other[k], other[k + 1], other[k + 2], ev):  # type: ignore[arg-type]
                del other[k : k + 3]
                if not other and not slot[mine]:
                    del self._pairs[key]  # nothing waits here: an empty slot is no slot
                return True
        own = slot[mine]
        if len(own) >= 3 * PAIR_CAP:
            del own[:3]  # the oldest goes, as from a full bounded deque
        own += (now, port, call_id)
        return False

    def _same_attempt(self, t: float, port: int | None, call_id: str | None, ev: Event) -> bool:
        """A copy logged at t (with that port and call id, None = unknown) is ev's attempt."""
        return (
            abs(t - ev.time) <= self.window
            and (port is None or ev.port is None or port == ev.port)
            and (call_id is None or ev.call_id is None or call_id == ev.call_id)
        )

    def _take_held(self, line: Event) -> Event | None:
        """The waiting security event that `line` (the module's line) is a copy of, removed."""
        fam = FAMILY.get(line.kind)
        for k, h in enumerate(self._held):
            if (
                h.ip == line.ip
                and FAMILY.get(h.kind) == fam
                and self._same_attempt(h.time, h.port, h.call_id, line)
            ):
                del self._held[k]
                return h
        return None

    def _unpair(self, ev: Event) -> None:
        slot = self._pairs.get((ev.ip, FAMILY.get(ev.kind)))
        if slot is not None:
            side = slot[1]
            for k in range(0, len(side), 3):
                if side[k] == ev.time and side[k + 1] == ev.port:
                    del side[k : k + 3]
                    return

    def _ami_repeat(self, ev: Event, channel: str) -> bool:
        """manager.c logs an unknown user twice: "nonexistent user", "failed to authenticate"."""
        if ev.kind is not Kind.AMI_LOGIN_FAILED or channel != LOG:
            return False
        key = (ev.ip, ev.account)
        if ev.detail == "nonexistent user":
            _bounded_put(self._ami_nouser, key, ev.time)
            return False
        t = self._ami_nouser.pop(key, None)
        return t is not None and abs(ev.time - t) <= 1.0

    def _fix_kind(self, ev: Event) -> Event:
        """PJSIP `Failed to authenticate` on a callid that had `No matching endpoint`: unknown."""
        if ev.service is not Service.PJSIP or not ev.call_id:
            return ev
        key = (ev.ip, ev.call_id)
        if ev.kind is Kind.UNKNOWN_ACCOUNT:
            _bounded_put(self._nomatch, key, ev.time)
        elif ev.kind is Kind.WRONG_PASSWORD:
            t = self._nomatch.get(key)
            if t is not None and abs(ev.time - t) <= self.challenge_window:
                return replace(ev, kind=Kind.UNKNOWN_ACCOUNT)
        return ev

    # -- address-less lines ---------------------------------------------------------------------
    def _hold(self, c: Candidate, out: list[Event]) -> None:
        ev = c.event
        fam = FAMILY.get(ev.kind)
        if c.tag is not None:  # several lines of one request share its [C-…] tag
            for p in self._pending:
                if p.tag == c.tag and FAMILY.get(p.event.kind) == fam:
                    self.stats.duplicates += 1
                    return
        for k, (r, name, tag, channel) in enumerate(reversed(self._recent)):
            if k >= SCAN:
                break
            if name in c.link and abs(r.time - ev.time) <= LOOKBACK and _tags_agree(tag, c.tag):
                if FAMILY.get(r.kind) == fam:
                    self.stats.duplicates += 1
                    if channel == SECURITY and not c.followed:  # it was that event's pair
                        self._unpair(r)
                else:
                    out.append(ev.with_address(r.ip, r.port, r.transport))  # type: ignore[arg-type]
                if c.tampered:
                    out.append(tampering(ev.with_address(r.ip, r.port, r.transport)))  # type: ignore[arg-type]
                return
        self._pending.append(c)
        if len(self._pending) > MAX_PENDING:
            old = self._pending.popleft()
            self.stats.evicted += 1
            self._release_unlinked(old, out)

    def _link_forward(
        self, c: Candidate, ev: Event, out: list[Event]
    ) -> tuple[Event, Candidate | None, bool]:
        """An address line arrived: give its address to the nearest waiting address-less line.

        Returns the (maybe enriched) event, the waiting line merged into it when both are the
        same attempt, and whether any waiting line was linked.
        """
        for k in range(len(self._pending) - 1, max(-1, len(self._pending) - 1 - SCAN), -1):
            p = self._pending[k]
            if c.link_name not in p.link or abs(p.event.time - ev.time) > self.window:
                continue
            if not _tags_agree(p.tag, c.tag):
                continue
            del self._pending[k]
            linked = p.event.with_address(ev.ip, ev.port, ev.transport)  # type: ignore[arg-type]
            if p.tampered:
                out.append(tampering(linked))
            if FAMILY.get(p.event.kind) != FAMILY.get(ev.kind):
                out.append(linked)
                return ev, None, True
            # the same attempt: keep the address line, enriched with what the other line knew
            target = ev.target
            if p.event.account and ev.account and p.event.account != ev.account and target is None:
                target = ev.account  # chan_sip INVITE: InvalidPassword names the dialled number
            kind = p.event.kind if ev.kind is Kind.WRONG_PASSWORD else ev.kind  # the specific one
            merged = replace(
                ev,
                kind=kind,
                account=p.event.account or ev.account,
                target=target,
                user_agent=ev.user_agent or p.event.user_agent,
            )
            return merged, p, True
        return ev, None, False

    def _release_unlinked(self, c: Candidate, out: list[Event]) -> None:
        self.stats.unlinked += 1
        out.append(c.event)
        if c.tampered:
            out.append(tampering(c.event))

    # -- challenges -----------------------------------------------------------------------------
    def _note_answer(self, ev: Event) -> None:
        if ev.kind is Kind.CHALLENGE_SENT or not ev.call_id:
            return
        key = (ev.ip, ev.call_id)
        _bounded_put(self._answers, key, ev.time)
        waiting = self._challenges.get(key)
        if waiting:
            keep = [ch for ch in waiting if abs(ch.time - ev.time) > self.challenge_window]
            if keep:
                self._challenges[key] = keep
            else:
                del self._challenges[key]

    def _challenge(self, ev: Event) -> None:
        key = (ev.ip, ev.call_id or "")
        t = self._answers.get(key)
        if t is not None and abs(ev.time - t) <= self.challenge_window:
            return
        self._challenges.setdefault(key, []).append(ev)
        self._challenge_queue.append((ev.time + self.challenge_window, key, ev))

    def _expire_challenge(
        self, key: tuple[IPAddress | None, str], ev: Event, out: list[Event]
    ) -> None:
        waiting = self._challenges.get(key)
        if not waiting or not any(ch is ev for ch in waiting):
            return
        rest = [ch for ch in waiting if ch is not ev]
        if rest:
            self._challenges[key] = rest
        else:
            del self._challenges[key]
        out.append(
            replace(ev, kind=Kind.CHALLENGE_UNANSWERED, detail="ChallengeSent never answered")
        )

    # -- time -----------------------------------------------------------------------------------
    def release(self, now: float | None) -> list[Event]:
        """Release what waited longer than its window (everything when now is None)."""
        out: list[Event] = []
        while self._pending and (now is None or self._pending[0].event.time + self.window < now):
            self._release_unlinked(self._pending.popleft(), out)
        held = self._held
        while held and (now is None or held[0].time + MERGE_WAIT < now):
            out.append(held.popleft())  # its line never came: the event as it is
        q = self._challenge_queue
        while q and (now is None or q[0][0] < now or len(q) > MAX_CHALLENGES):
            if now is not None and q[0][0] >= now:
                self.stats.evicted += 1
            _, key, ev = q.popleft()
            self._expire_challenge(key, ev, out)
        return out

    @property
    def waiting(self) -> bool:
        return bool(self._pending or self._challenge_queue or self._held)


def _waits_for_line(ev: Event) -> bool:
    """A security event whose module line always follows and may know more (the From)."""
    return FAMILY.get(ev.kind) == "auth" and ev.service in _MERGED_SERVICES


def _merge(held: Event, line: Event) -> Event:
    """The security event, with what only the module's line knew."""
    return replace(
        held,
        user_agent=held.user_agent or line.user_agent,
        account=held.account or line.account,
        target=held.target or line.target,
    )


def _tags_agree(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b
