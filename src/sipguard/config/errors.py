"""Configuration errors: always one line naming the file, the key and the reason."""

from __future__ import annotations


class ConfigError(Exception):
    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file, self.key, self.reason = file, key, reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")
