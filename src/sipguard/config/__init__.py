"""Configuration: sipguard.toml and conf.d/*.toml, and rules/*/rule.toml. Fails fast at start."""

from sipguard.config.errors import ConfigError

__all__ = ["ConfigError"]
