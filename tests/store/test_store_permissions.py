"""The state directory and the database hold attackers' log lines: 0750 and 0600, like the unit."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from sipguard.daemon.harness import DaemonProc
from sipguard.store import Store, private_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # what an interactive root shell has
    yield
    os.umask(old)


def test_new_state_dir_and_database_are_private(tmp_path, loose_umask):
    state = tmp_path / "var" / "lib" / "sipguard"
    private_dir(state)
    db = state / "sipguard.db"
    store = Store.open(db)
    store.save_offences("203.0.113.7", [1.0])  # a write while open: the WAL files exist
    assert mode(state) == 0o750
    assert mode(db) == 0o600
    for side in ("sipguard.db-wal", "sipguard.db-shm"):
        assert mode(state / side) == 0o600, side


def test_looser_existing_modes_are_tightened_with_a_log_line(tmp_path, loose_umask, caplog):
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    db = state / "sipguard.db"
    first = Store.open(db)
    first.save_offences("203.0.113.7", [1.0])
    db.chmod(0o644)
    for side in ("sipguard.db-wal", "sipguard.db-shm"):
        (state / side).chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="sipguard.store"):
        private_dir(state)
        Store.open(db)
    assert mode(state) == 0o750 and mode(db) == 0o640
    for side in ("sipguard.db-wal", "sipguard.db-shm"):
        assert mode(state / side) == 0o640
    texts = [r.getMessage() for r in caplog.records]
    assert f"permissions tightened path={state} from=0755 to=0750" in texts[0]
    assert any(f"path={db} from=0644 to=0640" in t for t in texts)


@pytest.mark.slow
def test_a_manual_run_creates_a_private_state_dir(tmp_path, loose_umask):
    cfg = tmp_path / "sipguard.toml"
    cfg.write_text(
        f'[daemon]\nstate_dir = "{tmp_path}/state"\ncontrol_socket = "{tmp_path}/ctl.sock"\n'
        f'[sources.logs]\npaths = ["{tmp_path}/messages"]\n'
    )
    d = DaemonProc(cfg, tmp_path / "ctl.sock", ["--dry-run"]).start()
    try:
        state = tmp_path / "state"
        assert mode(state) == 0o750
        dbs = list(state.glob("*.db"))
        assert dbs and all(mode(f) == 0o600 for f in dbs), [oct(mode(f)) for f in dbs]
        assert all(mode(f) & 0o037 == 0 for f in state.iterdir())
    finally:
        d.stop()
