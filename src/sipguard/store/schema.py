"""The SQLite schema as an ordered list of migrations; a database records how far it got.

Append new migrations at the end; never edit one that has shipped. Statements are split on
";", so no ";" may appear inside a comment or a literal.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: decisions with history, evidence, escalation, offsets, allow-list
    """
    CREATE TABLE decisions (
        id          INTEGER PRIMARY KEY,
        network     TEXT NOT NULL,
        action      TEXT NOT NULL,
        rule        TEXT NOT NULL,
        reason      TEXT NOT NULL,
        start       REAL NOT NULL,
        expires     REAL,              -- NULL: permanent
        level       INTEGER NOT NULL DEFAULT 0,
        origin      TEXT NOT NULL DEFAULT 'local',
        ended       REAL,              -- set by unban or supersede, the row stays as history
        end_reason  TEXT
    );
    CREATE INDEX decisions_network ON decisions(network, start);
    CREATE INDEX decisions_open ON decisions(ended, expires);
    CREATE TABLE evidence (
        id          INTEGER PRIMARY KEY,
        decision_id INTEGER REFERENCES decisions(id) ON DELETE CASCADE,
        network     TEXT NOT NULL,
        time        REAL NOT NULL,
        event       TEXT NOT NULL      -- Event.to_dict() as JSON
    );
    CREATE INDEX evidence_network ON evidence(network, time);
    CREATE INDEX evidence_decision ON evidence(decision_id);
    CREATE TABLE offences (
        key         TEXT PRIMARY KEY,
        times       TEXT NOT NULL      -- JSON list of POSIX seconds
    );
    CREATE TABLE offsets (
        source      TEXT PRIMARY KEY,
        dev         INTEGER NOT NULL,
        inode       INTEGER NOT NULL,
        offset      INTEGER NOT NULL,
        line_no     INTEGER NOT NULL,
        head_hash   TEXT NOT NULL
    );
    CREATE TABLE allowlist (
        cidr        TEXT PRIMARY KEY,
        note        TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: what people did through the dashboard (and who), for the record
    """
    CREATE TABLE actions (
        id          INTEGER PRIMARY KEY,
        time        REAL NOT NULL,
        who         TEXT NOT NULL,
        action      TEXT NOT NULL,
        target      TEXT NOT NULL,
        result      TEXT NOT NULL
    );
    CREATE INDEX actions_time ON actions(time);
    """,
    # 3: the fraud baseline (was <state_dir>/fraud-baseline.json): the countries each account
    # calls, and when learning ends (one row; done = 1: a baseline was loaded, learning is over)
    """
    CREATE TABLE fraud_baseline (
        account     TEXT PRIMARY KEY,
        countries   TEXT NOT NULL      -- JSON list of country codes
    );
    CREATE TABLE fraud_learning (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        learn_until REAL,              -- NULL: no call seen yet
        done        INTEGER NOT NULL DEFAULT 0
    );
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
