"""Command-line faces. `sipguard.cli.main:main` is the console entry point."""

from sipguard.cli.main import CliError, main

__all__ = ["CliError", "main"]
