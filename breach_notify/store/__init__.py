"""DuckDB: schema, migrations, and the SQL of every stage. Bound parameters only."""

from breach_notify.store.db import connect, transaction

__all__ = ["connect", "transaction"]
