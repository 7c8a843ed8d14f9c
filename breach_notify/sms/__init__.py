"""Sending one SMS: the gateway protocol and URL registry, the gateways, their errors, segments.

Modules: ``gateway`` (``Gateway``, ``Message``, ``open_gateway``), ``gateways/`` (dryrun, memory,
twilio), ``errors`` (transient / permanent / opted out / account), ``segments`` (GSM-7 and UCS-2
counting, look-alikes).

Dependency rule: ``sms`` imports only the base modules (``settings``, ``errors``, ``numbers``,
``redact``). ``subscribers`` (confirmation codes) and ``notify`` (notices) both use it; it uses
neither. ``notify`` may import ``subscribers``; ``subscribers`` never imports ``notify``.
"""
