"""`sipguard scan --format html`: one self-contained page. Attacker text cannot break out of
its markup or script; nothing is loaded from elsewhere; and in a real headless Chromium the
charts draw (from the inlined Chart.js) with no console error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipguard.cli.main import main
from sipguard.daemon.harness import pjsip_failure
from sipguard.report.assets import chart_library

HOSTILE = "</script><img src=x onerror=alert(1)>"


def write_log(path: Path) -> None:
    lines = [pjsip_failure("8.8.8.8", n, account="1001") for n in range(6)]
    lines += [pjsip_failure("203.0.113.5", n, account=HOSTILE) for n in range(6)]
    lines += [pjsip_failure("2001:4860::9", n) for n in range(2)]  # below any threshold
    path.write_text("".join(lines))


def scan_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    log = tmp_path / "messages"
    write_log(log)
    assert main(["scan", "--format", "html", "--no-progress", str(log)]) == 1  # attacks found
    page = capsys.readouterr().out
    (tmp_path / "report.html").write_text(page)
    return page


def test_the_page_is_self_contained_and_escapes_attacker_text(tmp_path, capsys) -> None:
    page = scan_html(tmp_path, capsys)
    assert page.startswith("<!doctype html>")
    assert chart_library() in page  # the vendored library, inline
    # exactly our three script elements (data, library, drawing): none from the log
    assert len(re.findall(r"<script", page)) == 3
    assert "<img" not in page
    assert "<td>&lt;/script</td>" in page  # the account (as Asterisk's line gives it), escaped
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no CDN, no fetch
    assert "8.8.8.8" in page and ">US<" in page  # the attacker and its country


def test_the_charts_draw_in_chromium(tmp_path, capsys) -> None:
    from sipguard.testing.browser import (
        assert_not_blank,
        chromium,
        chromium_missing,
        severe_console,
    )

    if chromium_missing():
        pytest.skip(chromium_missing())
    scan_html(tmp_path, capsys)
    driver = chromium(tmp_path / "profile")
    try:
        driver.get((tmp_path / "report.html").as_uri())
        assert driver.execute_script("return document.body.dataset.drawn") == "1"
        assert (
            driver.execute_script(
                "return Chart.instances ? Object.keys(Chart.instances).length : 0"
            )
            == 3
        )
        assert driver.execute_script("return window.__alerted === undefined")
        driver.save_screenshot(str(tmp_path / "report.png"))
        assert_not_blank(tmp_path / "report.png")
        assert severe_console(driver) == []
    finally:
        driver.quit()
