"""A real Asterisk 20 in a test's network namespace, configured by the test.

The binaries come from `<repo>/../shared/asterisk/unpack` (Asterisk 20.20.1 with chan_sip and
PJSIP, built for Debian 12). The install is only read: everything Asterisk writes (config, logs,
control socket, db) lives in a scratch directory of the test.

    from sipguard.testing.asterisk import Pbx, PbxConfig, unpack

    prefix = unpack()                               # raises AsteriskUnavailable(reason)
    with NetLab() as lab:
        host = lab.add_host("pbx")
        attacker = lab.add_host("atk", hub=host)
        pbx = Pbx(lab, host, tmp_path / "ast", prefix, PbxConfig())
        pbx.start()                                 # returns once `core waitfullybooted` does
        pbx.messages, pbx.security                  # the log files (security log included)
        pbx.cli("pjsip show endpoints")             # any CLI command, output as text
        pbx.stop()                                  # by PID; also done by lab.close()

What the configuration gives (PbxConfig's defaults): PJSIP on UDP+TCP 5060, chan_sip on UDP+TCP
5070 (`alwaysauthreject=yes`, `allowguest=no`), IAX2 on 4569, AMI on 5038 (user `sipguard`, read
`security`), HTTP on 8088 (this build has no ARI module), RTP 10000-10100, the logger writing
`messages` and `security` with `dateformat=%F %T.%3q`. Every listener binds all addresses of the
namespace, so attacker namespaces joined to it reach each service at `attacker.hub_ip`.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sipguard.testing.netns import Host, NetLab

REPO = Path(__file__).resolve().parents[3]


def _find_unpack() -> Path:
    """`<repo>/../shared/asterisk/unpack`; a git worktree one level further down (wt/NAME) finds
    the same shared/ one level up. SIPGUARD_ASTERISK_UNPACK names another script."""
    env = os.environ.get("SIPGUARD_ASTERISK_UNPACK")
    if env:
        return Path(env)
    for base in (REPO.parent, REPO.parent.parent):
        script = base / "shared" / "asterisk" / "unpack"
        if script.is_file():
            return script
    return REPO.parent / "shared" / "asterisk" / "unpack"


UNPACK = _find_unpack()


class AsteriskUnavailable(Exception):
    """No real Asterisk can run here; the message says why (a test skips with it)."""


def unpack(script: Path = UNPACK) -> Path:
    """The unpacked Asterisk's prefix (idempotent: an existing working install is reused)."""
    if not script.is_file():
        raise AsteriskUnavailable(f"no Asterisk build: {script} is absent")
    if os.geteuid() != 0:
        raise AsteriskUnavailable("running a real Asterisk in a namespace needs root")
    try:
        out = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=600, check=True
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise AsteriskUnavailable(f"{script} failed: {exc}") from exc
    prefix = Path(out.stdout.strip().splitlines()[-1])
    if not (prefix / "sbin" / "asterisk").is_file():
        raise AsteriskUnavailable(f"{script} printed {prefix}, which holds no sbin/asterisk")
    return prefix


@dataclass
class PbxConfig:
    pjsip_port: int = 5060
    sip_port: int = 5070  # chan_sip: PJSIP and chan_sip cannot share a port
    iax_port: int = 4569
    ami_port: int = 5038
    http_port: int = 8088
    rtp: tuple[int, int] = (10000, 10100)
    # account -> password; PJSIP endpoints and chan_sip peers
    endpoints: dict[str, str] = field(default_factory=lambda: {"1001": "pj-1001-secret"})
    peers: dict[str, str] = field(default_factory=lambda: {"2001": "sip-2001-secret"})
    ami_users: dict[str, str] = field(default_factory=lambda: {"sipguard": "ami-secret"})
    dateformat: str = "%F %T.%3q"
    extra: dict[str, str] = field(default_factory=dict)  # file name -> text appended to it


def render(cfg: PbxConfig, scratch: Path, prefix: Path) -> dict[str, str]:
    """Every configuration file, by name (asterisk.conf included)."""
    d = {k: scratch / k for k in ("etc", "lib", "spool", "run", "log", "cache")}
    files: dict[str, str] = {
        "asterisk.conf": (
            "[directories]\n"
            f"astetcdir => {d['etc']}\nastmoddir => {prefix}/lib/asterisk/modules\n"
            f"astdatadir => {prefix}/var/lib/asterisk\nastvarlibdir => {d['lib']}\n"
            f"astdbdir => {d['lib']}\nastkeydir => {d['lib']}\nastagidir => {d['lib']}/agi-bin\n"
            f"astspooldir => {d['spool']}\nastrundir => {d['run']}\nastlogdir => {d['log']}\n"
            f"astcachedir => {d['cache']}\nastsbindir => {prefix}/sbin\n"
            "[options]\nnocolor = yes\n"
        ),
        # chan_sip is deprecated in 20 but still what many installs run; it must be named
        "modules.conf": (
            "[modules]\nautoload = yes\nload => chan_sip.so\n"
            + "".join(f"noload => {m}\n" for m in _NOLOAD)
        ),
        "logger.conf": (
            f"[general]\ndateformat = {cfg.dateformat}\n"
            "[logfiles]\nmessages => notice,warning,error,security\nsecurity => security\n"
        ),
        "pjsip.conf": _pjsip(cfg),
        "sip.conf": _sip(cfg),
        "iax.conf": f"[general]\nbindport = {cfg.iax_port}\nbindaddr = 0.0.0.0\n",
        "manager.conf": (
            f"[general]\nenabled = yes\nport = {cfg.ami_port}\nbindaddr = 0.0.0.0\n"
            + "".join(
                f"[{user}]\nsecret = {secret}\nread = security,system,call\nwrite = system\n"
                for user, secret in cfg.ami_users.items()
            )
        ),
        "http.conf": f"[general]\nenabled = yes\nbindaddr = 0.0.0.0\nbindport = {cfg.http_port}\n",
        "rtp.conf": f"[general]\nrtpstart = {cfg.rtp[0]}\nrtpend = {cfg.rtp[1]}\n",
        "extensions.conf": "[phones]\nexten => 600,1,Answer()\n same => n,Hangup()\n[nowhere]\n",
    }
    for name, text in cfg.extra.items():
        files[name] = files.get(name, "") + text
    return files


# modules this lab never uses: fewer threads and a faster boot on a busy 2-core machine
_NOLOAD = (
    "pbx_dundi.so",
    "chan_unistim.so",
    "res_calendar.so",
    "res_config_pgsql.so",
    "cdr_pgsql.so",
    "cel_pgsql.so",
    "res_hep.so",
    "res_hep_pjsip.so",
    "res_hep_rtcp.so",
    "res_statsd.so",
    "res_prometheus.so",
    "res_phoneprov.so",
    "res_pjsip_phoneprov_provider.so",
    "res_smdi.so",
    "app_voicemail.so",
    "res_stun_monitor.so",
    "res_aeap.so",
    "res_speech_aeap.so",
    "chan_websocket.so",
    "res_websocket_client.so",
    # this build has no res_ari.so: its ARI parts would only log load errors (HTTP still listens)
    *(f"res_ari_{m}.so" for m in ("applications", "asterisk", "bridges", "channels")),
    *(f"res_ari_{m}.so" for m in ("device_states", "endpoints", "events", "playbacks")),
    *(f"res_ari_{m}.so" for m in ("recordings", "sounds", "model")),
    "app_stasis.so",
    "res_stasis_broadcast.so",
    "app_stasis_broadcast.so",
)


def _pjsip(cfg: PbxConfig) -> str:
    out = [
        f"[udp]\ntype = transport\nprotocol = udp\nbind = 0.0.0.0:{cfg.pjsip_port}\n",
        f"[tcp]\ntype = transport\nprotocol = tcp\nbind = 0.0.0.0:{cfg.pjsip_port}\n",
    ]
    for acct, password in cfg.endpoints.items():
        out.append(
            f"[{acct}]\ntype = endpoint\ncontext = phones\ndisallow = all\nallow = ulaw\n"
            f"auth = {acct}-auth\naors = {acct}\n"
            f"[{acct}-auth]\ntype = auth\nauth_type = userpass\nusername = {acct}\n"
            f"password = {password}\n"
            f"[{acct}]\ntype = aor\nmax_contacts = 5\nremove_existing = yes\n"
        )
    return "".join(out)


def _sip(cfg: PbxConfig) -> str:
    out = [
        f"[general]\nudpbindaddr = 0.0.0.0:{cfg.sip_port}\ntcpenable = yes\n"
        f"tcpbindaddr = 0.0.0.0:{cfg.sip_port}\nalwaysauthreject = yes\nallowguest = no\n"
        "context = nowhere\n"
    ]
    for acct, secret in cfg.peers.items():
        out.append(
            f"[{acct}]\ntype = friend\nhost = dynamic\nsecret = {secret}\ncontext = phones\n"
            "disallow = all\nallow = ulaw\n"
        )
    return "".join(out)


class Pbx:
    """One Asterisk process in `host`'s namespace, configured from a PbxConfig."""

    def __init__(
        self, lab: NetLab, host: Host, scratch: Path, prefix: Path, config: PbxConfig | None = None
    ) -> None:
        self.lab, self.host, self.scratch, self.prefix = lab, host, scratch, prefix
        self.config = config or PbxConfig()
        self.conf = scratch / "etc" / "asterisk.conf"
        self.messages = scratch / "log" / "messages"
        self.security = scratch / "log" / "security"
        self.proc: subprocess.Popen[Any] | None = None
        self._env = {"LD_LIBRARY_PATH": str(prefix / "lib"), "PATH": "/usr/sbin:/usr/bin:/bin"}

    def sipguard_config(self, state: Path, extra: str = "") -> str:
        """A `sipguard.toml` for a daemon protecting this PBX on its defaults: its state and
        control socket under `state`, reading the PBX's two logs and its AMI (the AMI user the
        PbxConfig created for sipguard). `extra` is appended (more tables)."""
        cfg = self.config
        return f"""
[daemon]
state_dir = "{state}/state"
control_socket = "{state}/ctl.sock"
[sources.logs]
paths = ["{self.messages}", "{self.security}"]
[sources.ami]
enabled = true
port = {cfg.ami_port}
username = "sipguard"
secret = "{cfg.ami_users["sipguard"]}"
{extra}"""

    def write_config(self) -> None:
        for sub in ("etc", "lib/agi-bin", "spool", "run", "log", "cache"):
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        for name, text in render(self.config, self.scratch, self.prefix).items():
            (self.scratch / "etc" / name).write_text(text)

    def start(self, timeout: float = 90.0) -> Pbx:
        """Writes the configuration, starts Asterisk, returns once it is fully booted."""
        self.write_config()
        out = (self.scratch / "console.log").open("ab")
        argv = [str(self.prefix / "sbin" / "asterisk"), "-f", "-C", str(self.conf)]
        self.proc = self.lab.popen(
            self.host, argv, env=self._env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
        out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AsteriskUnavailable(f"asterisk exited {self.proc.returncode}: {self.tail()}")
            try:
                if self._rx("core waitfullybooted", 30).returncode == 0:
                    break
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                raise AsteriskUnavailable(f"asterisk not booted within {timeout}s: {self.tail()}")
            time.sleep(0.2)
        self.messages.touch()
        self.security.touch()
        return self

    def tail(self, n: int = 2000) -> str:
        try:
            return (self.scratch / "console.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _rx(self, command: str, timeout: float) -> subprocess.CompletedProcess[str]:
        # the control socket is a file: no need to enter the namespace to reach it
        argv = [str(self.prefix / "sbin" / "asterisk"), "-C", str(self.conf), "-rx", command]
        return subprocess.run(argv, env=self._env, capture_output=True, text=True, timeout=timeout)

    def cli(self, command: str, timeout: float = 30.0) -> str:
        """One CLI command's output (raises on failure)."""
        res = self._rx(command, timeout)
        if res.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed: {res.stderr or res.stdout}")
        return res.stdout

    def stop(self) -> None:
        """Ends Asterisk by its PID (SIGTERM, then SIGKILL after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
