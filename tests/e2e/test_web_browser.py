"""The dashboard in a real headless Chromium (Debian's, driven by Selenium and chromedriver)
against a real daemon whose nftables bans land in a NetLab namespace.

Bound beyond loopback, so a login comes first; then an attack (Asterisk's own log lines) must
appear on the live overview within 2 s of its address entering the kernel set; the explanation
shows the log lines; clicking unban (and confirming) takes the address out of the kernel set and
the store records who did it; a POST without the CSRF token is refused; the browser logged no
console error. Screenshots of the overview and of an explanation are written and checked not
blank (tests/e2e/web-shots/ when SIPGUARD_SHOTS is set, else the test's temporary directory).
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sipguard.daemon.harness import DaemonProc, append, pjsip_failure, wait_for, write_config
from sipguard.testing.browser import assert_not_blank, chromium, chromium_missing, severe_console
from sipguard.web.auth import hash_password

pytestmark = [pytest.mark.netns, pytest.mark.slow]

PASSWORD = "a long dashboard password"
RUN = """
import asyncio, logging, sys
from sipguard.config.settings import load_settings
from sipguard.daemon.app import Daemon
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
settings = load_settings(sys.argv[1])
sys.exit(asyncio.run(Daemon(settings, sys.argv[1], netns=sys.argv[2]).run()))
"""


def kernel_set(lab: Any, pbx: Any) -> str:
    out = lab.run(pbx, ["nft", "list", "set", "inet", "sipguard", "ban4"], check=False)
    return out.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, cookie: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(
        url,
        data=b'{"action": "ban", "addr": "192.0.2.66"}',
        headers={"Cookie": cookie, "Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_dashboard_in_chromium_against_a_daemon_banning_in_a_namespace(netlab, tmp_path):
    if chromium_missing():
        pytest.skip(chromium_missing())
    from selenium.webdriver.common.by import By

    shots = Path(os.environ.get("SIPGUARD_SHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    lab = netlab
    pbx = lab.add_host("pbx")
    atk = lab.add_host("attacker", hub=pbx)
    port = free_port()
    cfg = write_config(
        tmp_path,
        f"""
[web]
enabled = true
listen = "0.0.0.0"
port = {port}
password_hash = "{hash_password(PASSWORD)}"
asterisk_config = ""
""",
    )
    log = tmp_path / "log" / "messages"
    daemon = DaemonProc(cfg, tmp_path / "ctl.sock", [])
    daemon.argv = [sys.executable, "-c", RUN, str(cfg), pbx.name]
    url = f"http://127.0.0.1:{port}"
    driver = None
    try:
        daemon.start()
        driver = chromium(tmp_path / "chromium")
        driver.set_page_load_timeout(20)
        # beyond loopback: the dashboard sends a stranger to the login page
        driver.get(url + "/")
        assert driver.current_url.endswith("/login")
        driver.find_element(By.ID, "user").send_keys("admin")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "login").click()
        wait_for(lambda: driver.current_url == url + "/", 10, 0.05)
        wait_for(lambda: driver.find_element(By.ID, "live-state").text == "live", 10, 0.05)

        # a real attack: the lines Asterisk 20 writes for five wrong passwords
        for n in range(5):
            append(log, pjsip_failure(atk.ip, n))
        wait_for(lambda: atk.ip in kernel_set(lab, pbx), 10, 0.005)
        banned_at = time.monotonic()
        row = f'#recent-bans tr[data-network="{atk.ip}/32"]'
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, row), 5, 0.02)
        shown_after = time.monotonic() - banned_at
        print(f"on the overview {shown_after:.2f}s after the ban")
        assert shown_after < 2.0, f"on the overview {shown_after:.2f}s after the ban"
        top = driver.find_element(By.CSS_SELECTOR, "#top-sources tbody").text
        assert atk.ip in top
        wait_for(lambda: driver.find_element(By.ID, "active-bans").text == "1", 3, 0.05)
        time.sleep(0.5)  # let the charts finish drawing
        driver.save_screenshot(str(shots / "overview.png"))
        assert_not_blank(shots / "overview.png")

        # the explanation: rule, events and the very log lines
        click(driver, f"{row} button")
        wait_for(lambda: "Failed to authenticate" in _text(driver, "#explain-events"), 5, 0.05)
        assert "password-guessing" in _text(driver, "#explain-summary")
        driver.save_screenshot(str(shots / "explain.png"))
        assert_not_blank(shots / "explain.png")

        # a POST without the CSRF token (or from another origin) is refused, logged in or not
        cookie = "sipguard_session=" + driver.get_cookie("sipguard_session")["value"]
        assert post(url + "/api/action", cookie, {}) == 403
        token = driver.execute_script(
            "return fetch('/api/session').then(r => r.json()).then(s => s.csrf)"
        )
        assert (
            post(url + "/api/action", cookie, {"X-CSRF-Token": token, "Origin": "http://x"}) == 403
        )
        assert "192.0.2.66" not in kernel_set(lab, pbx)

        # unban by clicking, confirmed: out of the kernel set, recorded with who did it
        driver.get(url + "/#overview")
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, f"{row} button.unban"), 5, 0.05)
        click(driver, f"{row} button.unban")
        assert atk.ip in _text(driver, "#confirm-text")
        driver.find_element(By.ID, "confirm-ok").click()
        wait_for(lambda: atk.ip not in kernel_set(lab, pbx), 5, 0.02)
        # (recorded once the kernel answered: wait for the row)
        wait_for(lambda: ("admin", "unban", f"{atk.ip}/32", "ok") in actions(tmp_path), 5, 0.05)
        assert ("admin", "login", "127.0.0.1", "ok") in actions(tmp_path)
        wait_for(lambda: "unban" in _text(driver, "#toast"), 3, 0.05)

        severe = severe_console(driver)
        assert severe == [], severe
        # logging out (a POST with the token) ends the session
        driver.find_element(By.CSS_SELECTOR, "#logout button").click()
        wait_for(lambda: driver.current_url.endswith("/login"), 5, 0.05)
        driver.get(url + "/#bans")
        assert "/login" in driver.current_url
    finally:
        if driver is not None:
            driver.quit()
        assert daemon.stop() == 0
        shutil.rmtree(tmp_path / "chromium", ignore_errors=True)


def actions(tmp_path: Path) -> list[tuple[str, ...]]:
    db = sqlite3.connect(tmp_path / "state" / "sipguard.db")
    try:
        return [tuple(r) for r in db.execute("SELECT who, action, target, result FROM actions")]
    finally:
        db.close()


def click(driver: Any, css: str) -> None:
    """Click what `css` names. A pushed overview replaces the rows that changed, so the element
    found a moment ago may have just been replaced: then find it again (for at most 5 s)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def attempt() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return True
        except StaleElementReferenceException:
            return False

    wait_for(attempt, 5, 0.02)


def _text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)
