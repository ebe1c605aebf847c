"""A throw-away self-signed certificate for TLS tests (made by the openssl command)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed(tmp: Path, cn: str = "pbx.example.test") -> tuple[Path, Path]:
    """(certificate, key) PEM files in `tmp`, valid for two days."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", f"/CN={cn}", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key
