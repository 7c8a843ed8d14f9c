"""Helpers shared by the tests: fixtures, fakes, the plaintext scan, data generators."""
