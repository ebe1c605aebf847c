"""Packaged rule and reference data for sipguard.fraud."""
