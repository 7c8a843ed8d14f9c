"""The web's events: accepted into a durable journal, applied to the store later.

``journal`` (SQLite WAL, group commit; pseudonyms and gateway ids only) is the whole room: it
imports only the base modules and knows nothing of the DuckDB store. Applying the journal is
``notify``'s (``notify.applier``, and ``notify.worker``, the web process's background applier);
the sender and match drain it first.
"""
