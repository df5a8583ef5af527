"""The outbox table as a queue, on SQLite and PostgreSQL: enqueue, dedup, claims, backoff."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from tests.harness.outbox import outbox_rows
from ticketing.db import db
from ticketing.outbox import OutboxMessage, enqueue, pending_count
from ticketing.outbox.models import utcnow
from ticketing.outbox.store import claim_due, mark_delivered, mark_failed

LABELS = {"alertname": "OutboxTest", "severity": "info", "team": "support"}


def test_enqueue_commits_and_rolls_back_with_the_callers_transaction(make_app):
    app = make_app()
    with app.app_context():
        enqueue("test", "kept", {**LABELS, "ticket": 1})
        db.session.commit()
        enqueue("test", "dropped", {**LABELS, "ticket": 2})
        db.session.rollback()
    assert [row.dedup_key for row in outbox_rows(app)] == ["kept"]


def test_an_event_is_queued_once_however_often_it_is_reported(make_app):
    app = make_app()
    with app.app_context():
        first = enqueue("test", "ticket_created:7", {**LABELS, "ticket": 7})
        again = enqueue("test", "ticket_created:7", {**LABELS, "ticket": 7})
        db.session.commit()
        # A later transaction reporting the same event adds nothing and still commits.
        later = enqueue("test", "ticket_created:7", {**LABELS, "ticket": 7})
        enqueue("test", "ticket_created:8", {**LABELS, "ticket": 8})
        db.session.commit()
        assert isinstance(first, int) and again is None and later is None
        assert pending_count() == 2


def test_payload_is_an_alert_without_its_end(make_app):
    app = make_app()
    with app.app_context():
        starts = utcnow().replace(microsecond=0) - timedelta(minutes=3)
        enqueue(
            "test",
            "k",
            {**LABELS, "ticket": 42, "category": None, "assignee": ""},
            {"summary": "Hello", "description": None},
            starts_at=starts,
            generator_url="https://support.example/tickets/42",
        )
        db.session.commit()
    [row] = outbox_rows(app)
    assert row.payload == {
        "labels": {**LABELS, "ticket": "42"},  # empty labels dropped, values are text
        "annotations": {"summary": "Hello"},
        "startsAt": starts.isoformat() + ".000Z",
        "generatorURL": "https://support.example/tickets/42",
    }
    assert (row.attempts, row.delivered_at, row.last_error) == (0, None, None)


def test_labels_that_alertmanager_would_refuse_are_refused_at_once(make_app):
    app = make_app()
    with app.app_context():
        with pytest.raises(ValueError, match="alertname"):
            enqueue("test", "a", {"team": "support"})
        with pytest.raises(ValueError, match="label name"):
            enqueue("test", "b", {**LABELS, "ticket-id": 1})


def test_each_message_is_claimed_by_one_deliverer(make_app):
    """Four deliverers claim concurrently: every message once, none twice."""
    app = make_app()
    with app.app_context():
        for i in range(60):
            enqueue("test", f"m{i}", {**LABELS, "ticket": i})
        db.session.commit()

    claimed: list[list[int]] = [[] for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def deliverer(mine: list[int]) -> None:
        try:
            start.wait()
            with app.app_context():
                while batch := claim_due(limit=4, claim_timeout=60):
                    mine.extend(c.id for c in batch)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliverer, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    every = [i for mine in claimed for i in mine]
    assert len(every) == 60 and len(set(every)) == 60
    assert all(row.attempts == 1 for row in outbox_rows(app))


def test_failures_back_off_and_an_abandoned_claim_expires(make_app):
    app = make_app(initial_backoff="10s", max_backoff="40s")
    settings = app.extensions["outbox"].settings
    with app.app_context():
        enqueue("test", "a", {**LABELS, "ticket": 1})
        enqueue("test", "b", {**LABELS, "ticket": 2})
        db.session.commit()
        now = utcnow()

        batch = claim_due(10, claim_timeout=30, now=now)
        assert [c.attempts for c in batch] == [1, 1]
        # Claimed: nobody else gets them until the claim times out ...
        assert claim_due(10, 30, now=now + timedelta(seconds=29)) == []
        # ... the first was tried and failed: retried after the backoff.
        mark_failed(batch[:1], "HTTP 503", settings.backoff, now=now)
        assert claim_due(10, 30, now=now + timedelta(seconds=9)) == []
        [retry] = claim_due(10, 30, now=now + timedelta(seconds=10))
        assert (retry.dedup_key, retry.attempts) == ("a", 2)
        mark_failed([retry], "HTTP 503", settings.backoff, now=now + timedelta(seconds=10))
        # Its second failure waits 20 s; the second message's deliverer died
        # before recording anything, so its claim expires at +30 s too.
        assert claim_due(10, 30, now=now + timedelta(seconds=29)) == []
        again = claim_due(10, 30, now=now + timedelta(seconds=30))
        assert {(c.dedup_key, c.attempts) for c in again} == {("a", 3), ("b", 2)}
        mark_delivered([c.id for c in again])
        # Delivered messages are never claimed again.
        assert claim_due(10, 30, now=now + timedelta(days=1)) == []
        assert pending_count() == 0
    rows = {row.dedup_key: row for row in outbox_rows(app)}
    assert rows["a"].last_error is None and rows["a"].attempts == 3


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_claims_skip_rows_locked_by_another_transaction(make_app):
    """PostgreSQL: a row another deliverer holds FOR UPDATE is skipped, not waited for.

    (SQLite has one writer at a time: its claim is a single atomic UPDATE.)
    """
    app = make_app()
    with app.app_context():
        for i in range(3):
            enqueue("test", f"m{i}", {**LABELS, "ticket": i})
        db.session.commit()
        first_id = (
            db.session.execute(db.select(OutboxMessage.id).order_by(OutboxMessage.id))
            .scalars()
            .first()
        )
        with db.engine.connect() as other:
            other.execute(
                db.select(OutboxMessage.id).where(OutboxMessage.id == first_id).with_for_update()
            )  # held until `other` ends its transaction
            claimed = claim_due(10, 30)
            assert sorted(c.id for c in claimed) == [first_id + 1, first_id + 2]
            other.rollback()
        assert [c.id for c in claim_due(10, 30)] == [first_id]
        db.session.execute(update(OutboxMessage).values(delivered_at=utcnow()))
        db.session.commit()
