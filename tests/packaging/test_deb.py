"""packaging/build-deb: the .deb builds, installs with dpkg -i, runs, its units verify, a changed
configuration survives a reinstall, and dpkg --purge leaves nothing.

dpkg runs in a throwaway root (an overlay of / on a tmpfs, in a private mount namespace), so the
test installs for real, maintainer scripts included, without changing the machine it runs on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
UNSHARE = ("unshare", "-m", "--propagation", "private")

pytestmark = pytest.mark.slow

INSIDE = r"""
set -eu
dpkg -i /tmp/sipguard.deb >/dev/null
dpkg -s sipguard | grep -q '^Status: install ok installed'
sipguard --version
systemd-analyze verify /lib/systemd/system/sipguard.service \
  /lib/systemd/system/sipguard-sensor.service
test "$(stat -c %a /var/lib/sipguard)" = 750
test "$(stat -c %a /etc/sipguard/sipguard.toml)" = 640
sipguard config check --config /etc/sipguard >/dev/null
man -l /usr/share/man/man1/sipguard.1.gz 2>/dev/null | grep -q 'sipguard sensor'
grep -q 'complete -o filenames -F _sipguard sipguard' \
  /usr/share/bash-completion/completions/sipguard
echo '# changed by the admin' >> /etc/sipguard/sipguard.toml
dpkg -i /tmp/sipguard.deb >/dev/null </dev/null
grep -q '^# changed by the admin' /etc/sipguard/sipguard.toml
echo conffile-kept
dpkg --purge sipguard >/dev/null
if dpkg -s sipguard >/dev/null 2>&1; then echo "still known to dpkg"; exit 1; fi
echo purged
"""

OVERLAY = r"""
set -eu
base=$1
mount -t tmpfs -o size=2g tmpfs "$base"
mkdir "$base/up" "$base/work" "$base/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/up,workdir=$base/work" "$base/root"
mount --rbind /dev "$base/root/dev"
mount -t proc proc "$base/root/proc"
mount --rbind /sys "$base/root/sys"
cp "$2" "$base/root/tmp/sipguard.deb"
# the installed CLI runs from /usr/bin with a PATH of system directories only
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root chroot "$base/root" sh -c "$3"
rm -f "$base/up/tmp/sipguard.deb"
# what the package left: anything of sipguard's in the overlay's upper layer
find "$base/up" -path "$base/up/var/lib/dpkg" -prune -o -path "$base/up/var/log" -prune \
  -o -path "$base/up/var/cache" -prune -o -iname '*sipguard*' -print | sed "s|^$base/up|left: |"
"""


def test_deb_builds_installs_runs_and_purges_cleanly(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("dpkg -i needs root")
    for tool in ("dpkg-deb", "unshare", "systemd-analyze", "chroot"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    build = subprocess.run(
        [str(ROOT / "packaging/build-deb"), str(tmp_path / "dist")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    deb = Path(build.stdout.strip().splitlines()[-1])
    assert deb.name.startswith("sipguard_") and deb.suffix == ".deb"
    conffiles = subprocess.run(
        ["dpkg-deb", "--info", str(deb), "conffiles"], capture_output=True, text=True, check=True
    ).stdout
    assert conffiles.split() == ["/etc/sipguard/sipguard.toml"]
    base = tmp_path / "ovl"
    base.mkdir()
    res = subprocess.run(
        [*UNSHARE, "bash", "-c", OVERLAY, "overlay", str(base), str(deb), INSIDE],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("sipguard ")  # --version
    assert "conffile-kept" in lines and "purged" in lines
    assert not [ln for ln in lines if ln.startswith("left: ")], res.stdout
