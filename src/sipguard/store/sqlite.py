"""Durable state in SQLite (WAL): decisions and their history, evidence, escalation, offsets.

Every public call is its own transaction and is committed (synchronous=FULL) before it returns, so
whatever a caller saw acknowledged survives a kill -9 or a power cut; `transaction()` groups
several calls into one. One connection, guarded by a lock, so the daemon's threads may share it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

from sipguard.core.alerts import Action, Decision, Network
from sipguard.core.checkpoint import Checkpoint as Checkpoint  # one type, re-exported
from sipguard.core.events import Event
from sipguard.store.schema import MIGRATIONS, SCHEMA_VERSION

MAX_EVENTS_PER_DECISION = 200  # evidence kept for `explain`; the engine bounds it too
MAX_EVENT_JSON = 16_384  # one event's JSON; longer ones are cut to a stub
MAX_OFFENCE_TIMES = 1_000
MERGED = "merged: another rule on a running ban"  # end_reason of a decision that joined one
# The database holds attackers' log lines and the allow-list: the owner and its group only
# (the unit's StateDirectoryMode=0750, UMask=0027; a manual run must be as strict).
STATE_DIR_MODE = 0o750
DB_FILE_MODE = 0o600
MAX_DB_FILE_MODE = 0o640
log = logging.getLogger("sipguard.store")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$")


def private_dir(path: str | Path) -> None:
    """Create the state directory 0750, or tighten a looser existing one (with a log line)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
    tighten(p, STATE_DIR_MODE)


def tighten(path: Path, allowed: int) -> None:
    """Clear the permission bits of `path` beyond `allowed`, saying so; absent is fine."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & ~allowed:
        path.chmod(mode & allowed)
        log.warning(
            "permissions tightened path=%s from=%04o to=%04o (it holds attackers' log lines)",
            path,
            mode,
            mode & allowed,
        )


def _create_private(path: str) -> None:
    """An empty file is a new SQLite database: create it 0600 before SQLite does with the umask."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DB_FILE_MODE))
    except FileExistsError:
        pass


class StoreError(Exception):
    """The database cannot be opened or used; the message names the file and the reason."""


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A decision row with its id and how it ended (history)."""

    id: int
    decision: Decision
    ended: float | None
    end_reason: str | None


class Store:
    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0

    @classmethod
    def open(cls, path: str | Path, synchronous: str = "FULL") -> Store:
        """Open (creating directories, file and schema as needed) and migrate."""
        p = str(path)
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreError(f"{p}: synchronous must be FULL, NORMAL or EXTRA")
        try:
            if p != ":memory:":
                Path(p).parent.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
                _create_private(p)
            conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False, timeout=10)
            conn.execute("PRAGMA busy_timeout = 10000")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if p != ":memory:":
                for f in (p, p + "-wal", p + "-shm"):  # SQLite gives these the database's mode
                    tighten(Path(f), MAX_DB_FILE_MODE)
            conn.execute(f"PRAGMA synchronous = {synchronous}")  # validated above
            conn.execute("PRAGMA foreign_keys = ON")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{p}: cannot open database: {exc}") from exc
        if p != ":memory:" and str(mode).lower() != "wal":
            conn.close()
            raise StoreError(f"{p}: cannot switch to WAL journal mode (got {mode})")
        store = cls(conn, p)
        try:
            store._migrate()
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{p}: cannot prepare schema: {exc}") from exc
        return store

    def _migrate(self) -> None:
        with self.transaction() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT max(version) FROM schema_version").fetchone()
            have = int(row[0] or 0)
            if have > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path}: schema version {have} is newer than this sipguard "
                    f"({SCHEMA_VERSION}); upgrade sipguard"
                )
            for version in range(have + 1, SCHEMA_VERSION + 1):
                for stmt in _statements(MIGRATIONS[version - 1]):
                    c.execute(stmt)
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT max(version) FROM schema_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Group calls into one atomic commit; nests (inner blocks join the outer one)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    # decisions ----------------------------------------------------------------------------

    def save_decision(self, d: Decision) -> int:
        """Store a decision (and its evidence); an open decision for the network is superseded."""
        with self.transaction() as c:
            c.execute(
                "UPDATE decisions SET ended = ?, end_reason = 'superseded' "
                "WHERE network = ? AND ended IS NULL",
                (d.start, str(d.network)),
            )
            return self._insert_decision(c, d, None, None)

    def save_merged(self, d: Decision, why: str = MERGED) -> int:
        """Store a decision that joins the network's running ban (another rule fired on the
        same attack): kept in the history with its evidence for `explain`, closed at once, and
        the running ban stays the open one."""
        with self.transaction() as c:
            return self._insert_decision(c, d, d.start, why)

    def _insert_decision(
        self, c: sqlite3.Connection, d: Decision, ended: float | None, end_reason: str | None
    ) -> int:
        net = str(d.network)
        cur = c.execute(
            "INSERT INTO decisions (network, action, rule, reason, start, expires, level, "
            "origin, ended, end_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                net,
                d.action.value,
                d.rule,
                d.reason,
                d.start,
                d.expires,
                d.level,
                d.origin,
                ended,
                end_reason,
            ),
        )
        decision_id = int(cur.lastrowid or 0)
        if d.evidence:
            self._insert_events(c, decision_id, net, d.evidence)
        return decision_id

    def end_decision(self, network: Network | str, now: float, reason: str) -> int:
        """Close the open decisions for a network (unban); history stays. Returns how many."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE decisions SET ended = ?, end_reason = ? "
                "WHERE network = ? AND ended IS NULL",
                (now, reason, _net(network)),
            )
            return int(cur.rowcount)

    def active_decisions(self, now: float, evidence: bool = True) -> list[Decision]:
        """Open, unexpired decisions, oldest first, each with its own evidence (at most
        MAX_EVENTS_PER_DECISION): a restored ban is what it was before the restart."""
        open_rows = "FROM decisions WHERE ended IS NULL AND (expires IS NULL OR expires > ?)"
        with self._lock:
            rows = self._conn.execute(f"SELECT * {open_rows} ORDER BY start, id", (now,)).fetchall()
            found: dict[int, list[str]] = {}
            if evidence:
                for decision_id, text in self._conn.execute(
                    f"SELECT decision_id, event FROM evidence WHERE decision_id IN "
                    f"(SELECT id {open_rows}) ORDER BY decision_id, time, id",
                    (now,),
                ):
                    found.setdefault(int(decision_id), []).append(text)
        out = []
        for r in rows:
            d = _decision(r)
            texts = found.get(int(r[0]))
            out.append(replace(d, evidence=tuple(_events(texts))) if texts else d)
        return out

    def decision_history(self, network: Network | str) -> list[Decision]:
        return [s.decision for s in self.decision_rows(network)]

    def decision_rows(self, network: Network | str) -> list[StoredDecision]:
        """Every decision ever made for the network, oldest first, with how it ended."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM decisions WHERE network = ? ORDER BY start, id", (_net(network),)
            ).fetchall()
        return [StoredDecision(r[0], _decision(r), r[9], r[10]) for r in rows]

    # evidence -----------------------------------------------------------------------------

    def add_events(self, target: int | Network | str, events: Sequence[Event]) -> int:
        """Attach evidence to a decision id, or to a network's latest decision (or none yet).

        At most MAX_EVENTS_PER_DECISION are kept per decision; returns how many were stored.
        """
        with self.transaction() as c:
            decision_id: int | None
            if isinstance(target, int):
                row = c.execute("SELECT network FROM decisions WHERE id = ?", (target,)).fetchone()
                if row is None:
                    raise KeyError(f"no decision with id {target}")
                decision_id, net = target, str(row[0])
            else:
                net = _net(target)
                row = c.execute(
                    "SELECT id FROM decisions WHERE network = ? ORDER BY start DESC, id DESC",
                    (net,),
                ).fetchone()
                decision_id = int(row[0]) if row else None
            return self._insert_events(c, decision_id, net, events)

    def _insert_events(
        self, c: sqlite3.Connection, decision_id: int | None, net: str, events: Sequence[Event]
    ) -> int:
        if decision_id is None:
            sql = "SELECT count(*) FROM evidence WHERE decision_id IS NULL AND network = ?"
            have = c.execute(sql, (net,)).fetchone()[0]
        else:
            sql = "SELECT count(*) FROM evidence WHERE decision_id = ?"
            have = c.execute(sql, (decision_id,)).fetchone()[0]
        room = MAX_EVENTS_PER_DECISION - int(have)
        rows = [(decision_id, net, e.time, _event_json(e)) for e in events[: max(room, 0)]]
        c.executemany(
            "INSERT INTO evidence (decision_id, network, time, event) VALUES (?, ?, ?, ?)", rows
        )
        return len(rows)

    def events_for(self, network: Network | str, limit: int = 1000) -> list[Event]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT event FROM evidence WHERE network = ? ORDER BY time, id LIMIT ?",
                (_net(network), limit),
            ).fetchall()
        return _events(text for (text,) in rows)

    # escalation ---------------------------------------------------------------------------

    def save_offences(self, key: str, times: Sequence[float]) -> None:
        kept = [float(t) for t in list(times)[-MAX_OFFENCE_TIMES:]]
        with self.transaction() as c:
            if kept:
                c.execute(
                    "INSERT INTO offences (key, times) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET times = excluded.times",
                    (key, json.dumps(kept)),
                )
            else:
                c.execute("DELETE FROM offences WHERE key = ?", (key,))

    def load_offences(self) -> dict[str, list[float]]:
        with self._lock:
            rows = self._conn.execute("SELECT key, times FROM offences").fetchall()
        out: dict[str, list[float]] = {}
        for key, text in rows:
            try:
                out[str(key)] = [float(t) for t in json.loads(text)]
            except (ValueError, TypeError):
                continue
        return out

    # offsets ------------------------------------------------------------------------------

    def get_offset(self, source: str) -> Checkpoint | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT dev, inode, offset, line_no, head_hash FROM offsets WHERE source = ?",
                (source,),
            ).fetchone()
        return None if row is None else Checkpoint(*row)

    def set_offset(self, source: str, cp: Checkpoint) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO offsets (source, dev, inode, offset, line_no, head_hash) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(source) DO UPDATE SET dev = excluded.dev, "
                "inode = excluded.inode, offset = excluded.offset, line_no = excluded.line_no, "
                "head_hash = excluded.head_hash",
                (source, cp.dev, cp.inode, cp.offset, cp.line_no, cp.head_hash),
            )

    # allow-list ---------------------------------------------------------------------------

    def allowlist_add(self, cidr: str, note: str = "") -> str:
        """Add a CIDR, address or hostname; returns the normalised entry (ValueError if bad)."""
        entry = normalise_allow(cidr)
        with self.transaction() as c:
            c.execute(
                "INSERT INTO allowlist (cidr, note) VALUES (?, ?) "
                "ON CONFLICT(cidr) DO UPDATE SET note = excluded.note",
                (entry, note[:500]),
            )
        return entry

    def allowlist(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT cidr FROM allowlist ORDER BY cidr").fetchall()
        return [str(r[0]) for r in rows]

    def allowlist_remove(self, cidr: str) -> bool:
        with self.transaction() as c:
            cur = c.execute("DELETE FROM allowlist WHERE cidr = ?", (normalise_allow(cidr),))
            return cur.rowcount > 0

    # actions by people ------------------------------------------------------------------

    def record_action(self, when: float, who: str, action: str, target: str, result: str) -> None:
        """One thing someone did (dashboard ban, unban, allow, login), kept with who did it."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO actions (time, who, action, target, result) VALUES (?, ?, ?, ?, ?)",
                (when, who[:64], action[:32], target[:100], result[:500]),
            )

    def actions(self, limit: int = 100) -> list[dict[str, object]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT time, who, action, target, result FROM actions ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        keys = ("time", "who", "action", "target", "result")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # housekeeping -------------------------------------------------------------------------

    def prune(self, now: float, keep_days: float) -> int:
        """Forget decisions that ended (or expired) more than keep_days ago, with their evidence."""
        cutoff = now - keep_days * 86400.0
        with self.transaction() as c:
            cur = c.execute(
                "DELETE FROM decisions WHERE (ended IS NOT NULL AND ended < ?) "
                "OR (ended IS NULL AND expires IS NOT NULL AND expires < ?)",
                (cutoff, cutoff),
            )
            c.execute("DELETE FROM evidence WHERE decision_id IS NULL AND time < ?", (cutoff,))
            c.execute("DELETE FROM actions WHERE time < ?", (cutoff,))
            return int(cur.rowcount)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def normalise_allow(value: str) -> str:
    value = value.strip()
    try:
        return str(ip_network(value, strict=False))
    except ValueError:
        pass
    if _HOSTNAME.match(value) and not value.replace(".", "").isdigit():
        return value.lower().rstrip(".")
    raise ValueError(f"{value[:80]!r} is neither a CIDR, an address nor a hostname")


def _net(network: Network | str) -> str:
    return str(network if not isinstance(network, str) else ip_network(network, strict=False))


def _events(texts: Iterable[str]) -> list[Event]:
    out = []
    for text in texts:
        try:
            out.append(Event.from_dict(json.loads(text)))
        except (ValueError, KeyError, TypeError, AssertionError):
            continue  # a row cut to a stub, or written by a newer version
    return out


def _event_json(e: Event) -> str:
    text = json.dumps(e.to_dict(), separators=(",", ":"))
    if len(text) > MAX_EVENT_JSON:
        stub: dict[str, Any] = e.to_dict()
        stub["origin"] = {"source": e.origin.source[:200], "line": e.origin.line_no, "text": ""}
        for k in ("account", "target", "user_agent", "call_id"):
            if isinstance(stub.get(k), str):
                stub[k] = stub[k][:200]
        stub["detail"] = e.detail[:200]
        text = json.dumps(stub, separators=(",", ":"))
    return text


def _decision(r: tuple[Any, ...]) -> Decision:
    return Decision(
        network=ip_network(r[1], strict=False),
        action=Action(r[2]),
        rule=r[3],
        reason=r[4],
        start=r[5],
        expires=r[6],
        level=r[7],
        origin=r[8],
    )


def _statements(script: str) -> list[str]:
    # the migrations hold no ';' inside literals, so a plain split is exact
    out = []
    for part in script.split(";"):
        code = [ln for ln in part.splitlines() if ln.strip() and not ln.strip().startswith("--")]
        if code:
            out.append(part.strip())
    return out
