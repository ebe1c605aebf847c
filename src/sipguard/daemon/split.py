"""`sipguard run` as two processes, three with a `[sensor]` table (the default; `--no-privsep`
keeps one, for tests and dev).

The enforcer is the parent systemd starts: it reads the configuration (a root-owned file, not
attacker input), creates the firewall table, and starts the parser as `python -m sipguard run
--privsep-fd N` with one end of a socketpair. It then keeps CAP_NET_ADMIN only and answers
requests until the parser closes the channel, and exits with the parser's status. The parser
drops every capability (and switches user when `[daemon] user` is set) before it reads any
log, AMI or CDR text; it gets SIGKILL if the enforcer dies, like the single process did on
kill -9, and systemd restarts the pair. Bans stay in the kernel either way.

With `[sensor]`, the enforcer also starts the packet sensor (`--sensor-fd`, daemon/sensorproc.py)
before it drops its own privileges: NFQUEUE verdicts need CAP_NET_ADMIN in the process that
sends them, so the sensor keeps that one capability (and nothing else) and sends its events to
the parser, which still holds none. If the sensor process dies, the enforcer stops the parser
cleanly and exits with status 1, so systemd restarts all three (fail-open meanwhile).
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
from sipguard.daemon import caps, sensorproc
from sipguard.daemon.allow import build_allow_networks, own_addresses
from sipguard.daemon.build import build_firewall, build_sensor_config, config_file
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
    with_sensor = build_sensor_config(settings) is not None  # and so does a bad [sensor]
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
    common = (["--config", config] if config else []) + (["--dry-run"] if dry_run else [])
    fds = [theirs.fileno(), sig_r]
    sensor_ends = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) if with_sensor else None
    if sensor_ends is not None:
        fds.append(sensor_ends[0].fileno())
    argv = [sys.executable, "-m", "sipguard", "run", "--privsep-fd", ",".join(map(str, fds))]
    argv += common + (["--simulate"] if simulate else [])
    child = subprocess.Popen(argv, pass_fds=fds)
    theirs.close()
    os.close(sig_r)
    sensor = None
    if sensor_ends is not None:
        sensor_ends[0].close()
        sensor = _SensorChild(sensor_ends[1], common, sig_w)
    stopping = threading.Event()

    def forward(sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGHUP:
            stopping.set()  # a sensor ending now is being stopped, not dying
        try:
            os.write(sig_w, bytes([sig]))
        except OSError:  # the parser is gone already: serve() sees EOF and we exit
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    try:
        caps.drop(keep=(caps.CAP_NET_ADMIN,), for_exec=True)
    except caps.PrivilegeError:
        for proc in (child, sensor.proc if sensor else None):
            if proc is not None:
                proc.kill()
                proc.wait()
        raise
    if sensor is not None:
        sensor.watch(stopping)
    pids = {"sensor": sensor.proc.pid} if sensor else {}
    kv(log, logging.INFO, "enforcer running", pid=os.getpid(), parser=child.pid, **pids)
    try:
        server.serve(ours)
    finally:
        ours.close()
        firewall.close()  # finishes queued conntrack flushes; the bans stay in the kernel
    rc = child.wait()
    stopping.set()
    sensor_died = sensor.stop() if sensor is not None else False
    os.close(sig_w)
    kv(log, logging.INFO, "enforcer stopped", parser_status=rc, **server.counts)
    if sensor_died:
        return 1  # systemd restarts the three
    return rc if rc >= 0 else 1  # the parser died of a signal: a failure, systemd restarts


class _SensorChild:
    """The sensor process, watched from a thread: if it ends while we are not stopping, the
    parser is told to stop (through the signal pipe) and `stop()` reports the death."""

    def __init__(self, end: socket.socket, common: list[str], sig_w: int) -> None:
        stop_r, self._stop_w = os.pipe()  # closing our end tells the sensor to stop
        fds = (end.fileno(), stop_r)
        argv = [sys.executable, "-m", "sipguard", "run", "--sensor-fd", f"{fds[0]},{fds[1]}"]
        self.proc = subprocess.Popen([*argv, *common], pass_fds=fds)
        end.close()
        os.close(stop_r)
        self._sig_w = sig_w
        self._lock = threading.Lock()  # the pipe is closed by stop(), written by the watcher
        self._open = True
        self.died = False

    def watch(self, stopping: threading.Event) -> None:
        def wait() -> None:
            status = self.proc.wait()
            with self._lock:
                if stopping.is_set() or not self._open:
                    return
                self.died = True
                kv(log, logging.CRITICAL, "sensor process died, stopping (systemd restarts"
                   " sipguard; SIP passes meanwhile)", status=status)  # fmt: skip
                try:
                    os.write(self._sig_w, bytes([signal.SIGTERM]))
                except OSError:
                    pass

        threading.Thread(target=wait, name="sipguard-sensor-watch", daemon=True).start()

    def stop(self) -> bool:
        """Tell the sensor to stop (it removes its queue rules), wait; True if it had died."""
        with self._lock:
            self._open = False
            os.close(self._stop_w)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.died


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
    """In the child, first thing after reading the configuration: drop every capability, then
    wrap the channel. `fds`: "CHANNEL,SIGNALS[,SENSOR]" as the enforcer passed them (SENSOR:
    this end of the sensor process's link, with `[sensor]`)."""
    numbers = _descriptors(fds, "--privsep-fd", (2, 3))
    _drop_child(settings, (), signal.SIGKILL)
    link = socket.socket(fileno=numbers[2]) if len(numbers) == 3 else None
    sensorproc.set_parser_link(sensorproc.LinkReader(link, settings.sensor))
    threading.Thread(
        target=_relay_signals, args=(numbers[1],), name="sipguard-signals", daemon=True
    ).start()
    return FirewallClient(socket.socket(fileno=numbers[0]))


def start_sensor(settings: Settings, fds: str) -> int:
    """`sipguard run --sensor-fd LINK,STOP`, started by the enforcer: keep CAP_NET_ADMIN alone
    (as `[daemon] user` when set: the capability survives the uid switch, and verdicts only
    check the capability), then run the sensor until the enforcer closes STOP."""
    link, stop = _descriptors(fds, "--sensor-fd", (2,))
    config = build_sensor_config(settings)
    if config is None:  # the file lost its table since the enforcer read it
        raise ConfigError(config_file(settings, "sensor"), "sensor", "the table is gone")
    # for_exec: the iptables fallback runs iptables, which needs the capability as well;
    # SIGTERM when the enforcer dies: the sensor removes its queue rules on the way out
    _drop_child(settings, (caps.CAP_NET_ADMIN,), signal.SIGTERM, for_exec=True)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload is the parser's business
    cap_eff = f"{caps.read_caps()['CapEff']:016x}"
    kv(log, logging.INFO, "sensor process", pid=os.getpid(), uid=os.getuid(), cap_eff=cap_eff)
    return asyncio.run(sensorproc.serve_sensor(config, socket.socket(fileno=link), stop))


def _descriptors(fds: str, flag: str, counts: tuple[int, ...]) -> list[int]:
    try:
        numbers = [int(x) for x in fds.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) not in counts:
        want = " or ".join(map(str, counts))
        raise caps.PrivilegeError(f"{flag}: expected {want} descriptors, got {fds!r}")
    return numbers


def _drop_child(
    settings: Settings, keep: tuple[int, ...], parent_death: int, for_exec: bool = False
) -> None:
    parent = os.getppid()
    caps.drop(keep, identity(settings), parent_death=parent_death, for_exec=for_exec)
    if os.getppid() != parent:  # the enforcer died before the death signal was armed
        raise caps.PrivilegeError("the enforcer process is gone")


def _relay_signals(fd: int) -> None:
    """Raise here the signals the enforcer received (stop, reload) until it closes the pipe."""
    while data := os.read(fd, 64):
        for sig in data:
            if sig in FORWARDED:
                os.kill(os.getpid(), sig)


def parser_caps() -> dict[str, Any]:
    """This process's capability sets, for `status`."""
    return {k: f"{v:016x}" for k, v in caps.read_caps().items()}
