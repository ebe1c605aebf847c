"""Blocklist feeds: APIBAN, plain IP/CIDR lists, CrowdSec LAPI decision streams.

    config.py  the `[[feeds]]` tables -> FeedConfig (one-line errors)
    parse.py   bodies -> networks (pure, size-capped, garbage counted)
    state.py   what a feed holds between refreshes: entries and their expiry, cursors (pure)
    http.py    the one HTTP GET (urllib, capped, conditional) and file reads: the adapter
    client.py  one refresh of one feed per protocol (paging, 304, 429, "no new bans")

The daemon (daemon/feeds.py) schedules refreshes and hands each feed's networks, minus the
allow-list (policy/blocklist.py), to the firewall's per-feed kernel set.
"""
