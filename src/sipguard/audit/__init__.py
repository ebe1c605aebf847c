"""Asterisk config audit and hardening: parser, checks, reports, harden writer."""

from sipguard.audit.checks import CHECKS, run_checks
from sipguard.audit.dialplan import Reach, reachability
from sipguard.audit.harden import Credential, Plan, plan_hardening
from sipguard.audit.loader import DirLoader, MemoryLoader
from sipguard.audit.model import Config, Entry, Finding, Section, Severity, SourceFile, Tree
from sipguard.audit.parser import Loader, parse_tree
from sipguard.audit.report import score, to_json, to_sarif, write_text

__all__ = [
    "CHECKS",
    "Config",
    "Credential",
    "DirLoader",
    "Entry",
    "Finding",
    "Loader",
    "MemoryLoader",
    "Plan",
    "Reach",
    "Section",
    "Severity",
    "SourceFile",
    "Tree",
    "parse_tree",
    "plan_hardening",
    "reachability",
    "run_checks",
    "score",
    "to_json",
    "to_sarif",
    "write_text",
]
