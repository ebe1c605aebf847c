"""Headless Chromium for the dashboard and HTML report tests: Debian's `chromium` driven by
Selenium through Debian's `chromium-driver`, with a fresh profile and no background traffic;
and a check that a screenshot shows something."""

from __future__ import annotations

import importlib.util
import os
import struct
import zlib
from pathlib import Path
from typing import Any

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def chromium_missing() -> str:
    """Why the browser tests cannot run here ("" when they can)."""
    if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
        return "needs Debian's chromium and chromium-driver (scripts/install-deps --dev)"
    if importlib.util.find_spec("selenium") is None:
        return "needs selenium (pip, the dev extra)"
    return ""


def severe_console(driver: Any) -> list[dict[str, Any]]:
    """What the page logged at error level (failed loads, exceptions, CSP refusals)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def png_pixels(path: Path) -> bytes:
    """The raw (filtered) scanlines of a PNG: enough to see whether anything was drawn."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return zlib.decompress(idat)


def assert_not_blank(path: Path) -> None:
    raw = png_pixels(path)
    assert len(raw) > 100_000
    samples = {raw[i : i + 3] for i in range(0, len(raw) - 3, 101)}
    assert len(samples) > 50, f"{path} looks blank ({len(samples)} distinct samples)"


def chromium(profile: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,1700",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(DRIVER))
