"""Sending: the gateway protocol and gateways, templates, segment counting, throttle, sender."""
