"""`sipguard run --dry-run` with [geo] and the test's City/ASN databases, fed Asterisk 20's
security-log SuccessfulAuth lines: the right password from outside an account's region, ASN or
radius bans the source; impossible travel alerts; a success at home does nothing. A bad [geo]
stops the start with one line naming the file and key."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sipguard.daemon.harness import SRC, DaemonProc, append, wait_for, write_config

pytestmark = pytest.mark.slow


def success(account: str, ip: str, when: float) -> str:
    """A PJSIP SuccessfulAuth line as Asterisk 20's security log writes it."""
    ms = f"{int(when % 1 * 1000):03d}"
    ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when)) + f".{ms}"
    tv = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{ms}+0000"
    return (
        f'[{ts}] SECURITY[18584] res_security_log.c: SecurityEvent="SuccessfulAuth",'
        f'EventTV="{tv}",Severity="Informational",Service="PJSIP",EventVersion="1",'
        f'AccountID="{account}",SessionID="{account}{int(when)}",'
        f'LocalAddress="IPV4/UDP/10.20.0.2/5060",RemoteAddress="IPV4/UDP/{ip}/5060",'
        f'UsingPassword="1"\n'
    )


def config(tmp: Path, city: Path, asn: Path, extra: str = "") -> Path:
    geo = f"""
[geo]
city = "{city}"
asn = "{asn}"
[geo.accounts.1001]
regions = ["US-MN"]
[geo.accounts.2002]
asns = [7922]
[geo.accounts.3003]
radius_km = 300
learn = 1
{extra}
"""
    return write_config(tmp, geo, logs=("security",))


def test_region_asn_radius_and_travel_through_the_daemon(
    geoip: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    city, asn = geoip()
    d = DaemonProc(config(tmp_path, city, asn), tmp_path / "ctl.sock", ["--dry-run"]).start()
    log = tmp_path / "log" / "security"
    now = time.time()
    try:
        lines = [
            success("1001", "198.51.100.10", now - 86400),  # Minneapolis: at home
            success("1001", "203.0.113.10", now),  # Utah: outside US-MN
            success("2002", "198.51.100.140", now - 86400),  # Duluth, AS7922
            success("2002", "203.0.113.140", now),  # Lagos, AS29465
            success("3003", "198.51.100.20", now - 86400),  # learns Minneapolis
            success("3003", "198.51.100.150", now - 43200),  # Duluth: 230 km, inside
            success("3003", "203.0.113.20", now),  # Utah: 1600 km away
            success("4004", "198.51.100.30", now - 1800),  # no fence; Minneapolis...
            success("4004", "203.0.113.150", now),  # ...Lagos 30 minutes later
        ]
        append(log, "".join(lines))
        want = {"203.0.113.10/32", "203.0.113.140/32", "203.0.113.20/32"}
        wait_for(lambda: want <= d.banned())
        recent = wait_for(
            lambda: [
                a for a in d.request("status")["recent_alerts"] if a["rule"] == "impossible-travel"
            ]
        )
        assert [a["key"] for a in recent] == ["203.0.113.150"]
        assert "km/h > 900" in recent[0]["reason"]
        assert d.banned() == want  # at home, inside the radius, travel (alert only): no ban
        bans = {b["network"]: b for b in d.request("bans")}
        assert "region US-UT not in ['US-MN']" in bans["203.0.113.10/32"]["reason"]
        assert "AS29465 not in [7922]" in bans["203.0.113.140/32"]["reason"]
        assert "radius 300 km" in bans["203.0.113.20/32"]["reason"]
    finally:
        d.stop()


def test_bad_geo_config_stops_the_start(
    geoip: Callable[..., tuple[Path, Path]], tmp_path: Path
) -> None:
    city, asn = geoip()
    cfg = config(tmp_path, city, asn, '[geo.accounts.5005]\nregions = "US-MN"\n')
    argv = [sys.executable, "-m", "sipguard", "run", "--dry-run", "--config", str(cfg)]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=30, env={"PYTHONPATH": SRC}, check=False
    )
    assert out.returncode != 0
    assert f"{cfg}: geo.accounts.5005.regions: expected a list of str" in out.stderr


def test_country_data_without_databases_and_reload(tmp_path: Path) -> None:
    """No database in the directory: the bundled country data fences by country; a reload
    with a new [geo] swaps the stage, a bad one keeps it."""
    (tmp_path / "GeoIP").mkdir()

    def write(countries: str, extra: str = "") -> Path:
        geo = f"""
[geo]
directory = "{tmp_path}/GeoIP"
{extra}
[geo.default]
countries = [{countries}]
"""
        return write_config(tmp_path, geo, logs=("security",))

    d = DaemonProc(write('"US"'), tmp_path / "ctl.sock", ["--dry-run"]).start()
    log = tmp_path / "log" / "security"
    try:
        append(log, success("1001", "8.8.8.8", time.time() - 86400))  # US: inside
        append(log, success("1001", "1.1.1.1", time.time()))  # AU: outside
        wait_for(lambda: d.banned() == {"1.1.1.1/32"})
        assert "country AU not in ['US']" in d.request("bans")[0]["reason"]
        write('"US"', 'profile = "nosuch"')
        r = d.request("reload")
        assert r["reloaded"] is False and "geo.profile: no profile named 'nosuch'" in r["error"]
        write('"AU"')
        assert d.request("reload")["reloaded"] is True
        append(log, success("1001", "9.9.9.9", time.time()))  # US: now outside
        wait_for(lambda: "9.9.9.9/32" in d.banned())
    finally:
        d.stop()
