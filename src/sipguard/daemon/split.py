"""`sipguard run` as two processes (the default; `--no-privsep` keeps one, for tests and dev).

The enforcer is the parent systemd starts: it reads the configuration (a root-owned file, not
attacker input), creates the firewall table, and starts the parser as `python -m sipguard run
--privsep-fd N` with one end of a socketpair. It then keeps CAP_NET_ADMIN only and answers
requests until the parser closes the channel, and exits with the parser's status. The parser
drops every capability (and switches user when `[daemon] user` is set) before it reads any
log, AMI or CDR text; it gets SIGKILL if the enforcer dies, like the single process did on
kill -9, and systemd restarts the pair. Bans stay in the kernel either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from sipguard.config.errors import ConfigError
from sipguard.config.settings import Settings
from sipguard.daemon import caps
from sipguard.daemon.allow import build_allow_networks, own_addresses
from sipguard.daemon.build import build_firewall, config_file
from sipguard.daemon.control import ControlServer
from sipguard.daemon.logs import kv
from sipguard.daemon.privsep import EnforcerServer, FirewallClient
from sipguard.policy.guard import BanGuard

log = logging.getLogger("sipguard.enforcer")
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # stop, stop, reload: the parser's


def identity(settings: Settings) -> caps.Identity:
    d = settings.daemon
    try:
        return caps.resolve_identity(d.user, d.group, d.groups)
    except caps.PrivilegeError as exc:  # a config error: one line naming file and key
        raise ConfigError(config_file(settings, "daemon"), exc.key, exc.reason) from None


def run_enforcer(settings: Settings, config: str | None, dry_run: bool, simulate: bool) -> int:
    who = identity(settings)  # a bad user/group name stops the start here, with its key
    # beside a running daemon, stop before the kernel is touched (the parser checks it again)
    asyncio.run(ControlServer(settings.daemon.control_socket, _no_handler).check_free())
    firewall = build_firewall(settings, dry_run)
    firewall.init()
    a = settings.allow
    configured = build_allow_networks(a.networks, a.hosts, include_own=False)
    server = EnforcerServer(firewall, BanGuard(configured=tuple(configured)), own=own_addresses)
    _prepare_dirs(settings, who)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    # signals reach the parser through a pipe: a parser running as another user may not be
    # signalled by an enforcer that kept no CAP_KILL, but it may always signal itself
    sig_r, sig_w = os.pipe()
    argv = [sys.executable, "-m", "sipguard", "run", "--privsep-fd", f"{theirs.fileno()},{sig_r}"]
    argv += ["--config", config] if config else []
    argv += ["--dry-run"] if dry_run else []
    argv += ["--simulate"] if simulate else []
    child = subprocess.Popen(argv, pass_fds=(theirs.fileno(), sig_r))
    theirs.close()
    os.close(sig_r)

    def forward(sig: int, frame: FrameType | None) -> None:
        try:
            os.write(sig_w, bytes([sig]))
        except OSError:  # the parser is gone already: serve() sees EOF and we exit
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    try:
        caps.drop(keep=(caps.CAP_NET_ADMIN,), for_exec=True)
    except caps.PrivilegeError:
        child.kill()
        child.wait()
        raise
    kv(log, logging.INFO, "enforcer running", pid=os.getpid(), parser=child.pid)
    try:
        server.serve(ours)
    finally:
        ours.close()
        firewall.close()  # finishes queued conntrack flushes; the bans stay in the kernel
    rc = child.wait()
    os.close(sig_w)
    kv(log, logging.INFO, "enforcer stopped", parser_status=rc, **server.counts)
    return rc if rc >= 0 else 1  # the parser died of a signal: a failure, systemd restarts


async def _no_handler(cmd: str, args: dict[str, Any]) -> Any:
    raise AssertionError("never served")  # the server above only checks, it never listens


def _prepare_dirs(settings: Settings, who: caps.Identity) -> None:
    """Give the parser's user the directories it writes (state, control socket). A missing one
    is created for it. An existing one is handed over only when it is sipguard's own (named
    `sipguard`, e.g. systemd's StateDirectory/RuntimeDirectory) and still root's, i.e. on the
    first start with `[daemon] user`: then the files a root-run daemon left there go with it.
    Never a shared directory (/run, /tmp), and never again once the user owns it (the user
    could have planted links to other files there by then)."""
    dirs = {Path(settings.daemon.state_dir), Path(settings.daemon.control_socket).parent}
    for d in sorted(dirs):
        if not d.exists():
            d.mkdir(parents=True, mode=0o750)
            if who.uid is not None and who.gid is not None:
                os.chown(d, who.uid, who.gid)
            continue
        if who.uid is None or who.gid is None or d.name != "sipguard":
            continue
        if d.is_symlink() or d.lstat().st_uid != 0:
            continue
        for entry in d.iterdir():
            os.chown(entry, who.uid, who.gid, follow_symlinks=False)
        os.chown(d, who.uid, who.gid, follow_symlinks=False)


def start_parser(settings: Settings, fds: str) -> FirewallClient:
    """In the child, first thing after reading the configuration: drop privileges, then wrap
    the channel. The packet sensor alone needs CAP_NET_ADMIN (NFQUEUE verdicts are checked
    against the sender's capabilities at each send), so it keeps that one when configured.
    `fds`: "CHANNEL,SIGNALS" as the enforcer passed them."""
    try:
        chan, sig = (int(x) for x in fds.split(","))
    except ValueError:
        raise caps.PrivilegeError(f"--privsep-fd: expected two descriptors, got {fds!r}") from None
    parent = os.getppid()
    keep: tuple[int, ...] = (caps.CAP_NET_ADMIN,) if settings.sensor else ()
    caps.drop(keep, identity(settings), parent_death=signal.SIGKILL)
    if os.getppid() != parent:  # the enforcer died before the death signal was armed
        raise caps.PrivilegeError("the enforcer process is gone")
    if keep:
        kv(log, logging.WARNING, "[sensor] is on: the parsing process keeps CAP_NET_ADMIN")
    threading.Thread(
        target=_relay_signals, args=(sig,), name="sipguard-signals", daemon=True
    ).start()
    return FirewallClient(socket.socket(fileno=chan))


def _relay_signals(fd: int) -> None:
    """Raise here the signals the enforcer received (stop, reload) until it closes the pipe."""
    while data := os.read(fd, 64):
        for sig in data:
            if sig in FORWARDED:
                os.kill(os.getpid(), sig)


def parser_caps() -> dict[str, Any]:
    """This process's capability sets, for `status`."""
    return {k: f"{v:016x}" for k, v in caps.read_caps().items()}
