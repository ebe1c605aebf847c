"""Running the firewall's command-line tools (nft, iptables, ipset, conntrack): argv lists, never
a shell, always with a timeout, optionally inside a named network namespace."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from sipguard.actions.errors import FirewallError
from sipguard.core.alerts import Network

log = logging.getLogger("sipguard.firewall")

# subprocess calls to nft/iptables/ipset/conntrack must never hang the daemon's worker thread
CMD_TIMEOUT = 30.0


def netns_prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def run_tool(argv: Sequence[str], netns: str | None, stdin: str | None = None) -> str:
    """Run one tool (argv list, never a shell); FirewallError with its stderr on failure."""
    full = [*netns_prefix(netns), *argv]
    try:
        proc = subprocess.run(
            full, input=stdin, capture_output=True, text=True, timeout=CMD_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FirewallError(f"{argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().replace("\n", "; ")
        raise FirewallError(f"{' '.join(argv[:3])}: {msg[:2000]}")
    return proc.stdout


def flush_conntrack(networks: Sequence[Network], netns: str | None) -> int:
    """Delete the conntrack entries whose original source is in one of `networks`.

    Runs after the drop is in the kernel, so the flow cannot be recreated. Missing entries are
    normal ("0 flow entries have been deleted" exits 1) and are not errors. Returns how many
    networks had entries deleted.
    """
    flushed = 0
    for net in networks:
        fam = "ipv4" if net.version == 4 else "ipv6"
        argv = ["conntrack", "-D", "-f", fam, "-s", str(net.network_address)]
        if net.prefixlen != net.max_prefixlen:
            argv += ["--mask-src", str(net.netmask)]
        try:
            proc = subprocess.run(
                [*netns_prefix(netns), *argv],
                capture_output=True,
                text=True,
                timeout=CMD_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("conntrack flush of %s failed: %s", net, exc)
            continue
        if proc.returncode == 0:
            flushed += 1
        elif "0 flow entries" not in proc.stderr:
            log.warning("conntrack flush of %s failed: %s", net, proc.stderr.strip()[:300])
    return flushed
