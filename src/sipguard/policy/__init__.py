"""sipguard.policy"""
