"""The fleet's durable state beside the store's: the outbox of decisions waiting for Redis, and
small keyed values (the stream position, the replay guard's sequence per node).

Kept out of the numbered migrations on purpose: the tables are created when a fleet is first
configured (IF NOT EXISTS), so nodes without a fleet never carry them and the schema version
stays the store's own."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sipguard.store.sqlite import Store

_TABLES = (
    "CREATE TABLE IF NOT EXISTS fleet_outbox (id INTEGER PRIMARY KEY, message BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fleet_state (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
MAX_OUTBOX = 1_000_000  # messages kept while Redis is away; the oldest go first beyond this


class FleetState:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.transaction() as c:
            for stmt in _TABLES:
                c.execute(stmt)

    # ---- outbox ----------------------------------------------------------------------------
    def outbox_add(self, messages: Sequence[bytes]) -> int:
        """Append messages (in order); returns how many old ones were dropped to stay bounded."""
        with self.store.transaction() as c:
            c.executemany("INSERT INTO fleet_outbox (message) VALUES (?)", [(m,) for m in messages])
            over = int(c.execute("SELECT count(*) FROM fleet_outbox").fetchone()[0]) - MAX_OUTBOX
            if over > 0:
                c.execute(
                    "DELETE FROM fleet_outbox WHERE id IN "
                    "(SELECT id FROM fleet_outbox ORDER BY id LIMIT ?)",
                    (over,),
                )
            return max(0, over)

    def outbox_peek(self, limit: int) -> list[tuple[int, bytes]]:
        with self.store.transaction() as c:
            rows = c.execute(
                "SELECT id, message FROM fleet_outbox ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def outbox_done(self, upto: int) -> None:
        with self.store.transaction() as c:
            c.execute("DELETE FROM fleet_outbox WHERE id <= ?", (upto,))

    def outbox_size(self) -> int:
        with self.store.transaction() as c:
            return int(c.execute("SELECT count(*) FROM fleet_outbox").fetchone()[0])

    # ---- keyed state -----------------------------------------------------------------------
    def get(self, key: str) -> object:
        """The JSON value saved under `key`, or None."""
        with self.store.transaction() as c:
            row = c.execute("SELECT value FROM fleet_state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError:
            return None

    def put(self, values: dict[str, object]) -> None:
        """Save several values in one commit (the stream position with the replay guard)."""
        with self.store.transaction() as c:
            c.executemany(
                "INSERT INTO fleet_state (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v, separators=(",", ":"))) for k, v in values.items()],
            )
