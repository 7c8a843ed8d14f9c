"""``notify.outbox.record_delivery`` directly: monotonic, idempotent, order-independent."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import duckdb
import pytest
from support.subscribers import add_notice, notice_state

from breach_notify.notify.outbox import record_delivery
from breach_notify.settings import Settings
from breach_notify.store.db import connect


@pytest.fixture
def conn(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    c = connect(settings)
    yield c
    c.close()


def test_returns_whether_the_notice_changed(conn: duckdb.DuckDBPyConnection) -> None:
    add_notice(conn, "n", "s", "sent", gateway_id="SM1")
    assert record_delivery(conn, "SM1", "delivered", None) is True
    assert record_delivery(conn, "SM1", "delivered", None) is False
    assert record_delivery(conn, "SM1", "sent", None) is False
    assert record_delivery(conn, "SM1", "undelivered", "30003") is False
    assert record_delivery(conn, "SMx", "delivered", None) is False
    assert record_delivery(conn, "SM1", "weird", None) is False
    assert record_delivery(conn, "", "delivered", None) is False
    assert notice_state(conn, "n") == ("delivered", None)


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["queued", "sent", "undelivered", "delivered"]))
)
def test_any_order_ends_delivered(conn: duckdb.DuckDBPyConnection, order: tuple[str, ...]) -> None:
    add_notice(conn, "n", "s", "sending", gateway_id="SM1")
    for status in order:
        record_delivery(conn, "SM1", status, "30003" if status == "undelivered" else None)
    assert notice_state(conn, "n")[0] == "delivered"


def test_pending_and_suppressed_are_never_touched(conn: duckdb.DuckDBPyConnection) -> None:
    add_notice(conn, "a", "s", "pending", gateway_id="SM1", breach="b1")
    add_notice(conn, "b", "s", "suppressed", gateway_id="SM2", breach="b2")
    assert not record_delivery(conn, "SM1", "delivered", None)
    assert not record_delivery(conn, "SM2", "delivered", None)
    assert notice_state(conn, "a")[0] == "pending"
    assert notice_state(conn, "b")[0] == "suppressed"


@pytest.mark.parametrize("seed", range(40))
def test_a_batch_of_callbacks_ends_where_one_by_one_would(
    conn: duckdb.DuckDBPyConnection, seed: int
) -> None:
    """``outbox.record_deliveries`` (one statement per batch) = ``record_delivery``."""
    import random
    from datetime import UTC, datetime, timedelta

    from breach_notify.notify.outbox import record_deliveries

    rng = random.Random(seed)
    start = rng.choice(["sending", "in_doubt", "sent", "undelivered", "failed", "delivered"])
    add_notice(conn, "one", "s", start, gateway_id="SMa", breach="b1")
    add_notice(conn, "all", "s", start, gateway_id="SMb", breach="b2")
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    statuses = ["queued", "sent", "undelivered", "delivered", "failed", "bogus"]
    batch = []
    for i in range(rng.randrange(1, 7)):
        status = rng.choice(statuses)
        code = rng.choice([None, "30003", "30005"])
        batch.append((status, code, t0 + timedelta(seconds=rng.randrange(100))))
        record_delivery(conn, "SMa", status, code, batch[-1][2])
        del i
    record_deliveries(conn, [("SMb", s, c, at) for s, c, at in batch])
    cols = "state, error_code, sent_at, delivered_at"
    one = conn.execute(f"SELECT {cols} FROM notices WHERE id = 'one'").fetchone()
    both = conn.execute(f"SELECT {cols} FROM notices WHERE id = 'all'").fetchone()
    assert one is not None and both is not None
    assert one[:2] == both[:2]
    assert (one[3] is None) == (both[3] is None)
