"""Shared by the fleet tests and bench/fleet: a node's configuration and its control socket."""

from __future__ import annotations

from pathlib import Path

from sipguard.daemon.harness import DaemonProc

KEY = "fleet-test-key-0123456789abcdef"


def node_config(
    root: Path, name: str, url: str, allow: str = "", extra: str = "", key: str = KEY
) -> Path:
    """A node's directory: its config, state, logs and the shared key file."""
    d = root / name
    (d / "log").mkdir(parents=True, exist_ok=True)
    (d / "log" / "messages").touch()
    keyfile = root / "fleet.key"
    if not keyfile.exists():
        keyfile.write_text(key + "\n")
    cfg = d / "sipguard.toml"
    cfg.write_text(
        f"""
[daemon]
state_dir = "{d}/state"
control_socket = "{d}/ctl.sock"
tick_interval = 0.2
[sources.logs]
paths = ["{d}/log/messages"]
poll_interval = 0.1
[allow]
own_addresses = false
networks = [{allow}]
[fleet]
enabled = true
node = "{name}"
url = "{url}"
key_file = "{keyfile}"
{extra}
"""
    )
    return cfg


def node(
    root: Path, name: str, url: str, args: list[str], prefix: list[str] | None = None, **kw: str
) -> DaemonProc:
    cfg = node_config(root, name, url, **kw)
    return DaemonProc(cfg, root / name / "ctl.sock", args, prefix or [])


def fleet_status(d: DaemonProc) -> dict[str, object]:
    st: dict[str, object] = d.request("status")["fleet"]
    return st


def origins(d: DaemonProc) -> dict[str, str]:
    return {b["network"]: b["origin"] for b in d.request("bans")}
