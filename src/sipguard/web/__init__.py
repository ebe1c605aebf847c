"""sipguard.web: the dashboard, a face of the daemon (it acts only through the daemon's
command handler). See server.py."""

from sipguard.web.config import WebConfig, WebConfigError
from sipguard.web.live import LiveStats
from sipguard.web.overview import BanSummary
from sipguard.web.server import WebServer

__all__ = ["BanSummary", "LiveStats", "WebConfig", "WebConfigError", "WebServer"]
