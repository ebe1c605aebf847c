"""Configuration loading: defaults, conf.d merge order, one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipguard.cli.main import main
from sipguard.config import settings as settings_mod
from sipguard.config.errors import ConfigError
from sipguard.config.settings import ASTERISK_LOGS, Settings, load_settings, render_toml


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_protect_a_standard_asterisk_without_any_file(tmp_path, monkeypatch):
    monkeypatch.setattr(settings_mod, "DEFAULT_CONFIG", tmp_path / "absent" / "sipguard.toml")
    s = load_settings()
    assert s == Settings() and s.files == ()
    assert s.sources.logs.paths == ASTERISK_LOGS
    assert "/var/log/asterisk/security" in s.sources.logs.paths
    assert s.database == "/var/lib/sipguard/sipguard.db"
    assert s.daemon.control_socket == "/run/sipguard/control.sock"
    assert s.firewall.backend == "nftables"
    assert s.profiles["default"]["durations"] == ["10m", "1h", "1d", "1w"]
    assert s.allow.own_addresses is True


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"absent\.toml: no such file"):
        load_settings(tmp_path / "absent.toml")


def test_confd_merges_in_name_order_over_the_main_file(tmp_path):
    main_file = write(tmp_path / "sipguard.toml", '[firewall]\nbackend = "iptables"\n')
    write(tmp_path / "conf.d" / "20-b.toml", '[firewall]\nbackend = "dry-run"\n')
    write(tmp_path / "conf.d" / "10-a.toml", '[firewall]\nbackend = "nftables"\ntable = "sg2"\n')
    write(tmp_path / "conf.d" / "30-c.toml", '[firewall.ports]\nudp = "5060"\n')
    s = load_settings(main_file)
    assert s.firewall.backend == "dry-run"  # 20-b after 10-a
    assert s.firewall.table == "sg2"  # 10-a kept where 20-b says nothing
    assert s.firewall.ports.udp == "5060"
    assert s.firewall.ports.tcp == "5060-5061"  # default kept inside a partly-set table
    names = [Path(f).name for f in s.files]
    assert names == ["sipguard.toml", "10-a.toml", "20-b.toml", "30-c.toml"]


def test_profiles_add_to_the_defaults(tmp_path):
    f = write(tmp_path / "s.toml", '[profiles.quick]\ndurations = ["3s"]\n')
    s = load_settings(f)
    assert s.profiles["quick"] == {"durations": ["3s"]}
    assert "default" in s.profiles


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[daemon]\nbogus = 1\n", "daemon.bogus", "unknown key"),
        ("[nosuch]\nx = 1\n", "nosuch", "unknown key"),
        ('[daemon]\ntick_interval = "x"\n', "daemon.tick_interval", "expected float, got string"),
        ("[sources.ami]\nport = 70000\n", "sources.ami.port", "port number"),
        ('[sources.ami]\nport = "5038"\n', "sources.ami.port", "expected int, got string"),
        ('[sources.logs]\npaths = "/var/log/x"\n', "sources.logs.paths", "list of strings"),
        ('[firewall]\nbackend = "pf"\n', "firewall.backend", "must be one of"),
        ('[firewall]\ntable = "my-table"\n', "firewall.table", "must be a letter"),
        ('[firewall.ports]\nudp = "5060-abc"\n', "firewall.ports.udp", "not a port or range"),
        ('[allow]\nnetworks = ["10.0.0.0/33"]\n', "allow.networks", "not an address or CIDR"),
        ("[allow]\nown_addresses = 1\n", "allow.own_addresses", "expected bool, got integer"),
        ("firewall = 3\n", "firewall", "expected a table"),
        ("[rules]\npassword-guessing = 5\n", "rules.password-guessing", "expected a table"),
    ],
)
def test_errors_are_one_line_naming_file_and_key(tmp_path, text, key, reason):
    f = write(tmp_path / "conf.d" / "50-bad.toml", text)
    main_file = write(tmp_path / "sipguard.toml", "")
    with pytest.raises(ConfigError) as info:
        load_settings(main_file)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{f}: {key}: ")
    assert reason in msg
    assert info.value.file == str(f) and info.value.key == key


def test_invalid_toml_names_the_file(tmp_path):
    f = write(tmp_path / "s.toml", "[daemon\n")
    with pytest.raises(ConfigError, match=r"s\.toml: invalid TOML"):
        load_settings(f)


def test_render_round_trips_through_tomllib(tmp_path):
    import tomllib

    f = write(tmp_path / "s.toml", '[sources.ami]\nsecret = "x\\"y"\nenabled = true\n')
    s = load_settings(f)
    text = render_toml(s.to_dict())
    back = tomllib.loads(text)
    assert back["sources"]["ami"]["secret"] == "********"  # never printed
    assert back["sources"]["ami"]["enabled"] is True
    assert back["firewall"]["ports"]["udp"] == "5060-5061,4569"


def test_config_check_cli(tmp_path, capsys):
    f = write(tmp_path / "s.toml", '[daemon]\nlog_format = "json"\n')
    assert main(["config", "check", "--config", str(f)]) == 0
    out = capsys.readouterr().out
    assert 'log_format = "json"' in out
    bad = write(tmp_path / "b.toml", "[daemon]\nlog_format = 3\n")
    assert main(["config", "check", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"sipguard: error: {bad}: daemon.log_format: expected str, got integer"


def test_control_command_without_daemon_is_one_clear_line(tmp_path, capsys):
    sock = tmp_path / "nothing.sock"
    assert main(["status", "--socket", str(sock)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"sipguard: error: sipguard is not running (no daemon at {sock})"


def _leaves(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("rules", "sensor", "fraud"):
            out.extend(_leaves(v, f"{prefix}{k}."))
        elif not isinstance(v, dict):
            out.append(f"{prefix}{k}")
    return out


def test_example_config_is_the_defaults_and_shows_every_key():
    example = Path(__file__).resolve().parents[2] / "etc" / "sipguard.toml"
    s = load_settings(example)
    assert s.to_dict() == Settings().to_dict()  # installing it changes nothing
    text = example.read_text()
    for key in _leaves(Settings().to_dict()):
        if key.startswith("profiles.") and not key.startswith("profiles.default."):
            continue
        name = key.rsplit(".", 1)[-1]
        assert f"\n{name} = " in text, f"{key} is not shown in etc/sipguard.toml"


def test_oversized_or_binary_files_are_one_line_errors(tmp_path):
    big = write(tmp_path / "big.toml", "# x\n" * 300_000)
    with pytest.raises(ConfigError, match=r"big\.toml: larger than"):
        load_settings(big)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match=r"bin\.toml: not UTF-8"):
        load_settings(binary)


def test_config_check_validates_fraud_tables(tmp_path, capsys) -> None:
    from sipguard.cli.main import main

    conf = tmp_path / "sipguard.toml"
    conf.write_text("[daemon.fraud]\nenabled = true\n")
    assert main(["config", "check", "--config", str(conf)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "daemon.fraud.enabled" in err and str(conf) in err
