"""sipguard.web"""
