"""The one error every firewall backend raises."""

from __future__ import annotations


class FirewallError(Exception):
    """The kernel (or the tool in front of it) refused a change; the message is theirs."""
