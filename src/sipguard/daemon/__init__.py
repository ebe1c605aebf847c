"""sipguard.daemon"""
