"""Dropping capabilities and switching user, with ctypes (no libcap binding needed).

Constants are the kernel's, as documented in prctl(2), capset(2) and capabilities(7)
(linux/prctl.h, linux/capability.h):

    PR_SET_PDEATHSIG = 1      PR_SET_KEEPCAPS = 8      PR_CAPBSET_DROP = 24
    PR_SET_NO_NEW_PRIVS = 38  PR_CAP_AMBIENT = 47      PR_CAP_AMBIENT_CLEAR_ALL = 4
    PR_CAP_AMBIENT_RAISE = 2
    _LINUX_CAPABILITY_VERSION_3 = 0x20080522 (two 32-bit data words: caps 0-31 and 32-63)
    CAP_SETGID = 6  CAP_SETUID = 7  CAP_SETPCAP = 8  CAP_NET_ADMIN = 12

Capabilities are per thread: `drop` must run before the process starts any thread (it checks).
Order matters: the bounding set can only be shrunk while CAP_SETPCAP is still effective, and
the uid switch comes before the final capset so a uid-0 process ends with empty sets too.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_CAP_AMBIENT_RAISE = 2
CAP_VERSION_3 = 0x20080522
CAP_SETGID = 6
CAP_SETUID = 7
CAP_SETPCAP = 8
CAP_NET_ADMIN = 12
STATUS_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


class PrivilegeError(Exception):
    """Privileges could not be dropped as configured; the process must not go on. `key`: the
    setting at fault, when one is."""

    def __init__(self, reason: str, key: str = "") -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg2: int = 0, arg3: int = 0) -> int:
    rc = int(_libc.prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), 0, 0))
    return 0 if rc >= 0 else ctypes.get_errno()


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _Header(CAP_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):  # word 0: caps 0-31, word 1: caps 32-63
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise PrivilegeError(f"capset: {os.strerror(err)}")


def read_caps(pid: int | str = "self") -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of a process, from /proc/PID/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in STATUS_FIELDS:
            out[name] = int(value.strip(), 16)
    return out


def _mask(caps: Iterable[int]) -> int:
    m = 0
    for c in caps:
        m |= 1 << c
    return m


def _last_cap() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the parsing process runs as; all None = stay who we are."""

    uid: int | None = None
    gid: int | None = None
    groups: tuple[int, ...] = ()


def resolve_identity(user: str, group: str, groups: Iterable[str]) -> Identity:
    """`[daemon] user/group/groups` names (or numbers) -> ids; PrivilegeError names the key."""
    if not user:
        if group or list(groups):
            raise PrivilegeError("needs daemon.user as well", "daemon.group")
        return Identity()
    try:
        pw = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
    except KeyError:
        raise PrivilegeError(f"no such user {user!r}", "daemon.user") from None
    gid = pw.pw_gid if not group else _gid("daemon.group", group)
    extra = tuple(_gid("daemon.groups", g) for g in groups)
    return Identity(pw.pw_uid, gid, tuple(dict.fromkeys((gid, *extra))))


def _gid(key: str, name: str) -> int:
    try:
        return grp.getgrnam(name).gr_gid if not name.isdigit() else grp.getgrgid(int(name)).gr_gid
    except KeyError:
        raise PrivilegeError(f"no such group {name!r}", key) from None


def drop(
    keep: Iterable[int] = (),
    who: Identity = Identity(),
    parent_death: int = 0,
    for_exec: bool = False,
) -> None:
    """Keep only the capabilities `keep` (effective, permitted, bounding), clear the inheritable
    and ambient sets, set no_new_privs, switch to `who`; then check /proc/self/status says so.
    `parent_death`: a signal to receive when the parent dies (0 = none). `for_exec`: leave `keep`
    inheritable (and ambient, when it was; always after a switch to another user) so tools run
    with exec (nft, conntrack, iptables) get it too under systemd's SecureBits=noroot."""
    if threading.active_count() != 1:
        raise PrivilegeError("capabilities are per thread: drop them before starting threads")
    keep_mask = _mask(keep)
    start = read_caps()
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        raise PrivilegeError("prctl(PR_SET_NO_NEW_PRIVS) failed")
    could_shrink = bool(start["CapEff"] & (1 << CAP_SETPCAP))
    for cap in range(_last_cap() + 1):
        wanted_gone = could_shrink and not keep_mask & (1 << cap) and start["CapBnd"] & (1 << cap)
        if wanted_gone and _prctl(PR_CAPBSET_DROP, cap) != 0:
            raise PrivilegeError(f"prctl(PR_CAPBSET_DROP, {cap}) failed")
    if not for_exec:
        _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)  # EINVAL before 4.3: nothing to clear
    if who.uid is not None and who.gid is not None:
        if keep_mask:
            _prctl(PR_SET_KEEPCAPS, 1)  # keep the permitted set across setuid (sensor case)
        try:
            os.setgroups(list(who.groups))
            os.setresgid(who.gid, who.gid, who.gid)
            os.setresuid(who.uid, who.uid, who.uid)
        except OSError as exc:
            raise PrivilegeError(f"cannot switch to uid {who.uid}: {exc.strerror}") from None
    held = read_caps()["CapPrm"] & keep_mask
    # leaving uid 0 cleared the ambient set: a tool run with exec as that user (the sensor's
    # iptables fallback) gets `keep` only if it is raised again, which needs it inheritable
    raise_ambient = for_exec and who.uid not in (None, 0)
    # the kernel drops ambient bits that are no longer both permitted and inheritable
    inheritable = held if raise_ambient else start["CapInh"] & held if for_exec else 0
    _capset(held, held, inheritable)
    for cap in range(_last_cap() + 1) if raise_ambient else ():
        if held & (1 << cap) and _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap) != 0:
            raise PrivilegeError(f"prctl(PR_CAP_AMBIENT_RAISE, {cap}) failed")
    if parent_death:
        _prctl(PR_SET_PDEATHSIG, parent_death)  # after setuid: a credential change clears it
    now = read_caps()
    amb_ok = keep_mask if for_exec else 0
    if now["CapEff"] & ~keep_mask or now["CapPrm"] & ~keep_mask or now["CapAmb"] & ~amb_ok:
        raise PrivilegeError(f"capabilities still held after the drop: {now}")
    if could_shrink and now["CapBnd"] & ~keep_mask:
        raise PrivilegeError(f"bounding set not reduced: {now['CapBnd']:#x}")


def held(cap: int) -> bool:
    return bool(read_caps()["CapEff"] & (1 << cap))
