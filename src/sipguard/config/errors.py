"""User-facing errors: always one line. ConfigError names the file, the key and the reason."""

from __future__ import annotations


class ConfigError(Exception):
    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")


class UserError(Exception):
    """A user-facing error: the CLI prints it as one line and exits with status 2.

    It lives here, below `cli`, so the parts the CLI drives (sensor workers, `firewall render`)
    can raise it without importing `cli`; `cli.main.CliError` is this class.
    """
