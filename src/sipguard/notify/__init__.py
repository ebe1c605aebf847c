"""Notifications through apprise (mail, chat, webhooks), per kind and severity.

An adapter: only `sipguard.daemon` wires it. Producers (enforcer, pipeline observer, fraud
watcher, health checks) call `Notifier` methods that never block or raise; one task sends,
with a bounded queue (drops counted), retries with backoff, and bans gathered into a digest.
"""

from sipguard.notify.config import KINDS, SEVERITIES, NotifyConfig, Route, parse_notify
from sipguard.notify.health import HealthWatch, asterisk_running, log_sizes
from sipguard.notify.notifier import Message, Notifier, Sender
from sipguard.notify.send import apprise_sender

__all__ = [
    "KINDS",
    "SEVERITIES",
    "HealthWatch",
    "Message",
    "Notifier",
    "NotifyConfig",
    "Route",
    "Sender",
    "apprise_sender",
    "asterisk_running",
    "log_sizes",
    "parse_notify",
]
