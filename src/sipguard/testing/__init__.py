"""sipguard.testing"""
