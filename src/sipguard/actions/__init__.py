"""Kernel enforcement: firewall backends (nftables, iptables+ipset, dry-run) behind one interface.

fw = make_firewall("nftables", FirewallConfig())
fw.init(); fw.add(decisions, now); fw.reconcile(active, now); fw.teardown()
"""

import shutil

from sipguard.actions.dryrun import DryRunFirewall
from sipguard.actions.errors import FirewallError
from sipguard.actions.ipset import IpsetFirewall
from sipguard.actions.libnft import libnftables_available
from sipguard.actions.nftables import NftablesFirewall
from sipguard.actions.ports import FirewallConfig, Ports, parse_ports
from sipguard.actions.protocol import Firewall, ReconcileResult, timeouts
from sipguard.actions.tools import run_tool

BACKENDS = ("nftables", "iptables", "dry-run", "auto")


def pick_backend() -> str:
    """ "nftables" when libnftables or the nft command is there, else "iptables"."""
    if libnftables_available() or shutil.which("nft"):
        return "nftables"
    return "iptables"


def make_firewall(backend: str, cfg: FirewallConfig | None = None) -> Firewall:
    """The backend by name ("auto" picks one); ValueError for an unknown one."""
    cfg = cfg or FirewallConfig()
    if backend == "auto":
        backend = pick_backend()
    if backend == "nftables":
        return NftablesFirewall(cfg)
    if backend in ("iptables", "ipset"):
        return IpsetFirewall(cfg)
    if backend in ("dry-run", "dryrun"):
        return DryRunFirewall(cfg)
    raise ValueError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "DryRunFirewall",
    "Firewall",
    "FirewallConfig",
    "FirewallError",
    "IpsetFirewall",
    "NftablesFirewall",
    "Ports",
    "ReconcileResult",
    "make_firewall",
    "parse_ports",
    "pick_backend",
    "run_tool",
    "timeouts",
]
