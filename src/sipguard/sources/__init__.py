"""Inbound adapters. Each source has `async run(emit)`; the daemon supervises and restarts them."""

from sipguard.sources.ami import (
    AmiActionError,
    AmiAuthError,
    AmiClient,
    ami_security_events,
)
from sipguard.sources.base import (
    Checkpoint,
    CheckpointStore,
    Emit,
    LineBatch,
    MemoryCheckpointStore,
)
from sipguard.sources.follow import FileFollower
from sipguard.sources.journald import JournaldSource, JournaldUnavailable, journald_available

__all__ = [
    "AmiActionError",
    "AmiAuthError",
    "AmiClient",
    "Checkpoint",
    "CheckpointStore",
    "Emit",
    "FileFollower",
    "JournaldSource",
    "JournaldUnavailable",
    "LineBatch",
    "MemoryCheckpointStore",
    "ami_security_events",
    "journald_available",
]
