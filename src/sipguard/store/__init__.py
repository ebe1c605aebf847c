"""sipguard.store"""
