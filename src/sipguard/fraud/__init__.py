"""sipguard.fraud"""
