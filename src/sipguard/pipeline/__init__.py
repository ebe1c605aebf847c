"""The pure pipeline: bytes and events in, decisions out (normalize -> detect -> decide).

Imports only `core`, `detect` and `policy`; no I/O, the time is always handed in."""

from sipguard.pipeline.flow import AlertObserver, EventObserver, Pipeline
from sipguard.pipeline.stages import Decider, Detector, Normalizer, Unjudged

__all__ = [
    "AlertObserver",
    "Decider",
    "Detector",
    "EventObserver",
    "Normalizer",
    "Pipeline",
    "Unjudged",
]
