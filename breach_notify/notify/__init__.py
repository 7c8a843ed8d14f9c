"""Notices: match, templates, the outbox, reconciliation, quiet hours, throttle and the sender.

Modules: ``match`` (breaches × subscribers → pending notices), ``templates``, ``outbox`` (every
notice state transition, delivery ranks), ``reconcile`` (finding a message at the gateway after a
crash), ``sender`` (the paced loop), ``quiet``, ``throttle``.

Dependency rule: ``notify`` → ``subscribers`` → ``sms`` (and ``notify`` → ``sms``), never the
other way: ``subscribers`` does not import ``notify``. Effects on notices of a subscriber's
change (erasure) therefore live here, in ``outbox``.
"""
