"""sipguard.sources"""
