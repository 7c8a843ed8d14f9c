"""The web's events: accepted into a durable journal, applied to the store later.

``journal`` (SQLite WAL, group commit; pseudonyms and gateway ids only), ``applier`` (batches
into the store, each entry once, consent never backwards, status only forward), ``settle`` (a
callback for a message id never recorded settles the in-flight notice), ``worker`` (the web
process's background applier). The sender and match call ``applier.drain`` first.
"""
