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
