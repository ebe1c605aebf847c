"""sipguard.audit"""
