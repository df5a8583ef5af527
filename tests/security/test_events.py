"""Recording security events: folding repeats into one row, atomically, on both databases."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from tests.harness.security import counter, events
from ticketing.security import EventType, record_event
from ticketing.security.events import event_hash, severe_event, should_notify


@dataclass(frozen=True)
class Who:
    kind: str
    id: int


def record(
    app,
    event_type=EventType.UNAUTHORIZED_ACCESS,
    ip="198.51.100.7",
    actor=Who("partner", 3),
    **details,
):
    with app.app_context():
        return record_event(
            event_type,
            actor=actor,
            client_ip=ip,
            method="GET",
            path="/api/v1/tickets/9",
            details=details or {"n": 1},
        )


def test_repeats_fold_into_one_row_with_a_count(make_app, db_url):
    app = make_app(db_url)
    first = record(app, n=1)
    second = record(app, n=2)
    assert first.id == second.id and (first.count, second.count) == (1, 2)
    record(app, ip="198.51.100.8")  # another IP
    record(app, actor=Who("partner", 4))  # another actor
    record(app, event_type=EventType.RATE_LIMIT_EXCEEDED)  # another type
    rows = events(app)
    assert [r.count for r in rows] == [2, 1, 1, 1]
    folded = rows[0]
    assert folded.first_seen < folded.last_seen
    assert folded.details == {"n": 2}  # the latest occurrence's details
    assert folded.hash == event_hash(
        "UNAUTHORIZED_ACCESS", "partner", "3", "198.51.100.7", folded.first_seen.date().isoformat()
    )
    assert (
        folded.type,
        folded.severity,
        folded.actor_kind,
        folded.actor_id,
        folded.method,
        folded.path,
    ) == ("UNAUTHORIZED_ACCESS", "warning", "partner", "3", "GET", "/api/v1/tickets/9")


def test_the_day_is_part_of_the_key():
    assert event_hash("FAILED_AUTH", None, None, "192.0.2.1", "2024-11-05") != event_hash(
        "FAILED_AUTH", None, None, "192.0.2.1", "2024-11-06"
    )


def test_concurrent_writers_fold_without_losing_a_count(make_app, db_url):
    app = make_app(db_url)
    record(app)  # the row exists; the threads race on the upsert of the same hash
    threads, per_thread, errors = 6, 20, []

    def work():
        try:
            for _ in range(per_thread):
                assert record(app) is not None
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert errors == []
    [row] = events(app)
    assert row.count == 1 + threads * per_thread


def test_concurrent_first_occurrences_make_one_row(make_app, db_url):
    app = make_app(db_url)
    barrier = threading.Barrier(5)
    results = []

    def work():
        barrier.wait()
        results.append(record(app, event_type=EventType.FAILED_AUTH, actor=None))

    workers = [threading.Thread(target=work) for _ in range(5)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert sorted(r.count for r in results) == [1, 2, 3, 4, 5]
    assert [r.count for r in events(app)] == [5]


def test_every_occurrence_is_counted_and_severe_ones_signalled(make_app):
    app = make_app()
    received = []

    def on_severe(sender, event, notify):
        received.append((event.type, event.count, notify))

    before = counter("security_events_total", type="MULTIPLE_FAILED_LOGINS", severity="critical")
    with severe_event.connected_to(on_severe):
        for _ in range(11):
            record(app, event_type=EventType.MULTIPLE_FAILED_LOGINS, actor=None)
        record(app, event_type=EventType.FAILED_AUTH, actor=None)  # not severe
    assert (
        counter("security_events_total", type="MULTIPLE_FAILED_LOGINS", severity="critical")
        == before + 11
    )
    assert [n for _, _, n in received] == [True] + [False] * 8 + [True, False]
    assert {t for t, _, _ in received} == {EventType.MULTIPLE_FAILED_LOGINS}


@pytest.mark.parametrize(
    "count,notify",
    [
        (1, True),
        (2, False),
        (9, False),
        (10, True),
        (11, False),
        (100, True),
        (1000, True),
        (1010, False),
    ],
)
def test_notifications_on_first_and_powers_of_ten(count, notify):
    assert should_notify(count) is notify


def test_a_database_outage_never_breaks_the_request(make_app, tmp_path):
    app = make_app()
    with app.app_context():
        from ticketing.db import db

        db.session.execute(db.text("DROP TABLE security_events"))
        db.session.commit()
    before = counter("security_events_total", type="SUSPICIOUS_PATTERN", severity="warning")
    r = app.test_client().get(
        "/api/v1/echo?q=%3Cscript%3E", headers={"X-API-Key": "pw_aaaaaaaaaaaa_partner-one"}
    )
    assert r.status_code == 200
    assert (
        counter("security_events_total", type="SUSPICIOUS_PATTERN", severity="warning")
        == before + 1
    )


def test_nul_bytes_and_long_values_are_stored_safely(make_app, db_url):
    app = make_app(db_url, ratelimits={"enabled": False})
    client = app.test_client()
    headers = {"X-API-Key": "pw_aaaaaaaaaaaa_partner-one"}
    assert client.get("/api/v1/echo/a%00b", headers=headers).status_code == 400
    r = client.post(
        "/api/v1/echo", json={"na\u0000me": "x\u0000y", "long": "<script>" * 900}, headers=headers
    )
    assert r.status_code == 200
    [event] = events(app)
    assert event.count == 2 and event.path == "/api/v1/echo"
    assert {f["field"] for f in event.details["findings"]} >= {"na\\x00me", "long"}
