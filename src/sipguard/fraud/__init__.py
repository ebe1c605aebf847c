"""sipguard.fraud: toll-fraud and account protection.

Destination classification (`classify`), rules as data (`config`, data/rules.toml), the pure
detectors (`engine`), CDR readers (`cdr`, `fastscan`), the offline scan (`scan`; on every core:
`parallel`, `split`), the live AMI call tracker (`live`) and watcher (`watch`), and a seeded CDR
generator (`gen`).
"""

from sipguard.fraud.classify import Classifier, Destination, Hotlist, Numbering
from sipguard.fraud.config import FraudConfig, build_config, load_config
from sipguard.fraud.engine import FraudEngine
from sipguard.fraud.model import Call, Hit, account_of
from sipguard.fraud.report import AlertBook, Incident
from sipguard.fraud.scan import ScanResult, build_engine, scan
from sipguard.fraud.tables import RateTable, load_hotlist, load_rates

__all__ = [
    "AlertBook",
    "Call",
    "Classifier",
    "Destination",
    "FraudConfig",
    "FraudEngine",
    "Hit",
    "Hotlist",
    "Incident",
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
