"""Shipped detection rules, as data: `<id>/rule.toml` plus `<id>/samples/` (input and expectations).

Loaded by `sipguard.config.rules.load_rules()`; every rule's samples run in the test suite.
"""
