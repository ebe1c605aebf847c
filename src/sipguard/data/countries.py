"""Offline address-to-country: the iptocc package's table (it ships its data).

One lookup for the offline fraud scan and for the geo reader's fallback when no City database
is configured."""

from __future__ import annotations


def country_of_ip(ip: str) -> str | None:
    """The ISO country of `ip`; None for private, unknown or malformed addresses."""
    import iptocc  # loads its table on first use: only the paths that need it pay

    try:
        cc = iptocc.country_code(ip)
    except (ValueError, TypeError):
        return None
    return cc if isinstance(cc, str) and cc else None
