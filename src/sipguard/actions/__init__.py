"""sipguard.actions"""
