"""sipguard.detect"""
