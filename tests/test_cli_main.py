from sipguard.cli.main import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "sipguard" in capsys.readouterr().out


def test_no_command_is_usage_error(capsys):
    assert main([]) == 2


def test_every_command_maps_to_the_module_that_registers_it():
    from sipguard.cli.main import COMMAND_MODULES, build_parser

    full = build_parser()
    commands = set(full._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert commands == set(COMMAND_MODULES)
    for command, module in COMMAND_MODULES.items():
        only = build_parser((module,))
        assert command in only._subparsers._group_actions[0].choices  # type: ignore[union-attr]
