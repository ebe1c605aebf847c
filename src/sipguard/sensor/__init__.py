"""sipguard.sensor"""
