"""Subscribers and consent: opt-in, confirmation codes, keywords, erasure, key rotation.

Modules: ``registry`` (rows and lookup by number), ``pseudonyms`` (one pseudonym per key version
in use), ``codes`` (keyed-hash confirmation codes with expiry, attempts and rate limits),
``optin`` (add and confirm), ``consent`` (opt out, resume, activate), ``erasure``, ``importer``,
``keywords`` and ``inbound`` (SMS replies), ``housekeeping``, ``rotation``, ``events``.

Dependency rule: ``subscribers`` never imports ``notify`` (``notify`` imports ``subscribers``);
codes go out through ``sms``, the lower room both share. Notices are ``notify.outbox``'s.
"""
