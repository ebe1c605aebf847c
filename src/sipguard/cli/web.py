"""`sipguard web-password`: the scrypt hash for `[web] password_hash` (the dashboard's login).
The password is read from the terminal without echo, or from standard input when piped."""

from __future__ import annotations

import argparse
import getpass
import sys

from sipguard.cli.main import CliError
from sipguard.web.auth import MAX_PASSWORD, hash_password

MIN_PASSWORD = 12


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "web-password",
        help="print the hash of a dashboard password for [web] password_hash",
        description="Read a password (terminal without echo, or one line of standard input) and "
        "print its scrypt hash for `password_hash` in the [web] table.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("dashboard password: ")
        if getpass.getpass("again: ") != password:
            raise CliError("the two passwords differ")
    else:
        password = sys.stdin.readline(MAX_PASSWORD + 2).rstrip("\r\n")
    if len(password) < MIN_PASSWORD:
        raise CliError(f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise CliError(f"the password must have at most {MAX_PASSWORD} characters")
    print(hash_password(password))
    return 0
