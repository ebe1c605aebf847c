from sipguard.cli.main import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "sipguard" in capsys.readouterr().out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2
