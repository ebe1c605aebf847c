"""sipguard.fleet"""
