"""[firewall] scope: a ban covers every port by default; "ports" is the opt-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipguard.config.errors import ConfigError
from sipguard.config.settings import load_settings
from sipguard.daemon.build import build_firewall


def _firewall(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    f = tmp_path / "s.toml"
    f.write_text(text)
    return build_firewall(load_settings(f), dry_run=True)


def test_default_scope_drops_everything_from_a_banned_source(tmp_path):
    assert _firewall(tmp_path, "").cfg.all_ports is True


def test_port_scope_is_opt_in_and_keeps_the_port_list(tmp_path):
    fw = _firewall(tmp_path, '[firewall]\nscope = "ports"\n[firewall.ports]\nudp = "5070"\n')
    assert fw.cfg.all_ports is False
    assert fw.cfg.ports.ranges("udp") == [(5070, 5070)]
    # the older key still widens a port scope to everything
    fw = _firewall(tmp_path, '[firewall]\nscope = "ports"\nall_ports = true\n')
    assert fw.cfg.all_ports is True


def test_unknown_scope_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        _firewall(tmp_path, '[firewall]\nscope = "sip"\n')
    assert info.value.key == "firewall.scope" and "must be one of" in str(info.value)
    assert "\n" not in str(info.value)
