"""sipguard: protects Asterisk PBXes against SIP attacks and toll fraud."""

__version__ = "0.1.0"
