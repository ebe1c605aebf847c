"""Durable state in SQLite (WAL): decisions and history, evidence, escalation, offsets, allow-list.

st = Store.open("/var/lib/sipguard/state.db")
st.save_decision(d); st.active_decisions(now); st.end_decision(net, now, "unban")
BaselineStore(st).save(state); BaselineStore(st).load()   # the fraud baseline
"""

from sipguard.store.baseline import Baseline, BaselineStore
from sipguard.store.schema import SCHEMA_VERSION
from sipguard.store.sqlite import (
    MAX_EVENTS_PER_DECISION,
    Checkpoint,
    Store,
    StoredDecision,
    StoreError,
    normalise_allow,
    private_dir,
)

__all__ = [
    "MAX_EVENTS_PER_DECISION",
    "SCHEMA_VERSION",
    "Baseline",
    "BaselineStore",
    "Checkpoint",
    "Store",
    "StoreError",
    "StoredDecision",
    "normalise_allow",
    "private_dir",
]
