"""Subscribers and consent: opt-in, confirmation codes, keywords, erasure, key rotation."""
