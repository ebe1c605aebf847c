"""sipguard.fraud: toll-fraud and account protection.

Destination classification (`classify`), configuration (`config`; the rules are
rules/fraud/*/rule.toml), the detectors (`engine`), the one CDR row loop (`cdr`), the offline
scan (`scan`; on every core: `parallel`, `split`), the live AMI call tracker (`live`), the
stage the daemon drives (`stage`: call events and CDR lines in, core alerts out) and the rules'
sample driver (`samples`). The seeded CDR generator is
bench/fraudgen.py (not shipped).
"""

from sipguard.fraud.classify import Classifier, Destination, Hotlist, Numbering
from sipguard.fraud.config import FraudConfig, build_config, load_config
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.model import Call, account_of
from sipguard.fraud.report import ScanResult
from sipguard.fraud.scan import build_engine, scan
from sipguard.fraud.tables import RateTable, load_hotlist, load_rates

__all__ = [
    "Call",
    "Classifier",
    "Destination",
    "FraudConfig",
    "FraudEngine",
    "Hotlist",
    "Numbering",
    "RateTable",
    "ScanResult",
    "account_of",
    "build_config",
    "build_engine",
    "load_config",
    "load_hotlist",
    "load_rates",
    "scan",
]
