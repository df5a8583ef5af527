"""The tables the shipped exporter config reads, created and filled for tests.

The platform schema is the platform's and the ticketing tables belong to the
ticket service; these are minimal copies of the agreed columns (see
docs/exporter.md), written with SQLAlchemy Core so the same code fills SQLite
and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    insert,
)

platform = MetaData()
partners = Table(
    "partners",
    platform,
    Column("id", Integer, primary_key=True),
    Column("name", Text),
    Column("status", String(20)),
    Column("created_at", DateTime),
)
energy_pools = Table(
    "energy_pools",
    platform,
    Column("name", String(50), primary_key=True),
    Column("capacity_units", Numeric(14, 2)),
    Column("available_units", Numeric(14, 2)),
    Column("updated_at", DateTime),
)
transactions = Table(
    "transactions",
    platform,
    Column("id", Integer, primary_key=True),
    Column("partner_id", Integer),
    Column("status", String(20)),
    Column("amount_units", Numeric(14, 2)),
    Column("created_at", DateTime),
)

ticketing = MetaData()
tickets = Table(
    "tickets",
    ticketing,
    Column("id", Integer, primary_key=True),
    Column("partner_id", Integer),
    Column("title", Text),
    Column("status", String(20)),
    Column("priority", String(20)),
    Column("assignee_id", Integer),
    Column("created_at", DateTime),
    Column("first_response_at", DateTime),
    Column("first_response_due_at", DateTime),
    Column("sla_paused_at", DateTime),
)
outbox_messages = Table(
    "outbox_messages",
    ticketing,
    Column("id", Integer, primary_key=True),
    Column("kind", String(40)),
    Column("dedup_key", String(200)),
    Column("payload", JSON),
    Column("created_at", DateTime),
    Column("attempts", Integer),
    Column("next_attempt_at", DateTime),
    Column("delivered_at", DateTime),
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def seed_platform(url: str) -> None:
    """One pool at 250/1000 units; partners 1 and 2 active recently, 3 an hour ago."""
    engine = create_engine(url)
    now = utcnow()
    platform.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(partners),
            [
                {"id": i, "name": f"partner {i}", "status": "active", "created_at": now}
                for i in (1, 2, 3)
            ],
        )
        conn.execute(
            insert(energy_pools),
            [{"name": "main", "capacity_units": 1000, "available_units": 250, "updated_at": now}],
        )
        recent, old = now - dt.timedelta(minutes=2), now - dt.timedelta(hours=1)
        conn.execute(
            insert(transactions),
            [
                {"partner_id": 1, "status": "completed", "amount_units": 5, "created_at": recent},
                {"partner_id": 1, "status": "completed", "amount_units": 5, "created_at": recent},
                {"partner_id": 2, "status": "failed", "amount_units": 5, "created_at": recent},
                {"partner_id": 2, "status": "pending", "amount_units": 5, "created_at": recent},
                {"partner_id": 3, "status": "completed", "amount_units": 5, "created_at": old},
            ],
        )
    engine.dispose()


def seed_ticketing(url: str) -> None:
    """Two open high tickets, unassigned (one past its first-response target), one
    resolved low; three undelivered outbox messages and one delivered."""
    engine = create_engine(url)
    now = utcnow()
    ticketing.create_all(engine)
    past, future = now - dt.timedelta(minutes=30), now + dt.timedelta(hours=2)
    with engine.begin() as conn:
        conn.execute(
            insert(tickets),
            [
                {
                    "partner_id": 1,
                    "title": "a",
                    "status": "open",
                    "priority": "high",
                    "created_at": now,
                    "first_response_at": None,
                    "first_response_due_at": past,
                },
                {
                    "partner_id": 1,
                    "title": "b",
                    "status": "open",
                    "priority": "high",
                    "created_at": now,
                    "first_response_at": None,
                    "first_response_due_at": future,
                },
                {
                    "partner_id": 2,
                    "title": "c",
                    "status": "resolved",
                    "priority": "low",
                    "assignee_id": 1,
                    "created_at": now,
                    "first_response_at": now,
                    "first_response_due_at": past,
                },
            ],
        )
        conn.execute(
            insert(outbox_messages),
            [
                {
                    "kind": "ticket",
                    "dedup_key": f"k{i}",
                    "payload": {},
                    "created_at": now,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "delivered_at": now if i == 3 else None,
                }
                for i in range(4)
            ],
        )
    engine.dispose()


def execute(url: str, sql: str, **params) -> None:
    from sqlalchemy import text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(sql), params)
    engine.dispose()
