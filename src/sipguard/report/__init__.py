"""Offline scan reports: the scan pipeline, bounded per-attacker aggregates, and renderers."""

from sipguard.report.aggregate import AccountUnderAttack, Attacker, ScanReport
from sipguard.report.render import FORMATS, render
from sipguard.report.scan import ChunkSplitter, Scanner

__all__ = [
    "FORMATS",
    "AccountUnderAttack",
    "Attacker",
    "ChunkSplitter",
    "ScanReport",
    "Scanner",
    "render",
]
