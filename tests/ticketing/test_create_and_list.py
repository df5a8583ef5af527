"""Idempotent ticket creation, and cursor pagination of ticket lists."""

from __future__ import annotations

import threading

from tests.harness.app import create_test_app
from tests.harness.assertions import assert_error, row_counts

BODY = {"title": "Transactions failing", "description": "Every POST answers 503."}


def test_same_key_same_body_returns_the_same_ticket(app, client, make):
    acme = make.partner()
    headers = {**acme.headers, "Idempotency-Key": "order-7781"}
    first = client.post("/api/v1/tickets", headers=headers, json=BODY)
    assert first.status_code == 201
    counts = row_counts(app)

    # Same body (other key order and spacing): the same ticket, nothing new.
    replay = client.post(
        "/api/v1/tickets",
        headers=headers,
        content_type="application/json",
        data='{ "description": "Every POST answers 503.",\n  "title": "Transactions failing" }',
    )
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == first.json
    assert row_counts(app) == counts

    # Same key, another body: refused, nothing written.
    other = client.post(
        "/api/v1/tickets", headers=headers, json={**BODY, "description": "Something else entirely."}
    )
    assert_error(other, 422, "idempotency_key_reused")
    assert row_counts(app) == counts

    # Keys belong to a partner: another partner's identical key is a new ticket.
    rival = make.partner("Rival")
    theirs = client.post(
        "/api/v1/tickets", headers={**rival.headers, "Idempotency-Key": "order-7781"}, json=BODY
    )
    assert theirs.status_code == 201 and theirs.json["id"] != first.json["id"]

    # Without a key, every request is a new ticket.
    again = client.post("/api/v1/tickets", headers=acme.headers, json=BODY)
    assert again.status_code == 201 and again.json["id"] != first.json["id"]


def test_racing_requests_with_one_key_create_one_ticket(app, make):
    acme = make.partner()
    headers = {**acme.headers, "Idempotency-Key": "race-1"}
    results, barrier = [], threading.Barrier(4)

    def post():
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/tickets", headers=headers, json=BODY)
        results.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in results) == [200, 200, 200, 201], results
    assert len({body["id"] for _, body in results}) == 1
    assert row_counts(app)["tickets"] == 1


def test_expired_idempotency_key_can_be_used_again(app, client, make):
    from datetime import timedelta

    from ticketing.db import db
    from ticketing.models import IdempotencyKey

    acme = make.partner()
    headers = {**acme.headers, "Idempotency-Key": "k-1"}
    first = client.post("/api/v1/tickets", headers=headers, json=BODY).json
    with app.app_context():
        record = db.session.execute(db.select(IdempotencyKey)).scalar_one()
        record.created_at -= app.extensions["ticketing"].api.idempotency_ttl + timedelta(1)
        db.session.commit()
    second = client.post("/api/v1/tickets", headers=headers, json=BODY)
    assert second.status_code == 201 and second.json["id"] != first["id"]
    assert row_counts(app)["idempotency_keys"] == 1


def test_cursor_pagination_walks_every_ticket_once(client, make):
    acme = make.partner()
    agent = make.staff()
    ids = [make.ticket(acme, title=f"Ticket {i}")["id"] for i in range(7)]
    low = [make.ticket(acme, title=f"Low {i}", priority="low")["id"] for i in range(2)]

    def walk(url, headers, **params):
        pages, cursor = [], None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            r = client.get(url, headers=headers, query_string=query)
            assert r.status_code == 200, r.json
            pages.append([t["id"] for t in r.json["items"]])
            cursor = r.json["next_cursor"]
            if cursor is None:
                return pages

    pages = walk("/api/v1/tickets", acme.headers, limit=3, priority="medium")
    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]  # newest first

    pages = walk("/api/v1/staff/tickets", agent.headers, limit=4)
    assert [i for page in pages for i in page] == ids + low  # the queue: oldest first
    assert [len(p) for p in pages] == [4, 4, 1]

    # A ticket filed meanwhile neither shifts nor repeats the pages.
    first = client.get(
        "/api/v1/staff/tickets", headers=agent.headers, query_string={"limit": 4}
    ).json
    make.ticket(acme, title="Late arrival")
    second = client.get(
        "/api/v1/staff/tickets",
        headers=agent.headers,
        query_string={"limit": 4, "cursor": first["next_cursor"]},
    ).json
    assert [t["id"] for t in second["items"]] == (ids + low)[4:8]

    # A cursor only works with the filters and order it was made for.
    assert_error(
        client.get(
            "/api/v1/staff/tickets",
            headers=agent.headers,
            query_string={"limit": 4, "priority": "low", "cursor": first["next_cursor"]},
        ),
        400,
        "invalid_cursor",
    )
    assert_error(
        client.get(
            "/api/v1/staff/tickets",
            headers=agent.headers,
            query_string={"limit": 4, "order": "newest", "cursor": first["next_cursor"]},
        ),
        400,
        "invalid_cursor",
    )
    tampered = first["next_cursor"][:-3] + ("AAA" if first["next_cursor"][-3:] != "AAA" else "BBB")
    assert_error(
        client.get(
            "/api/v1/staff/tickets",
            headers=agent.headers,
            query_string={"limit": 4, "cursor": tampered},
        ),
        400,
        "invalid_cursor",
    )


def test_page_size_defaults_and_cap(db_url, tmp_path):
    from tests.harness.app import ticketing_config
    from tests.harness.seed import Maker

    config = ticketing_config(db_url, tmp_path)
    config["TICKETING"]["api"] = {"default_page_size": 2, "max_page_size": 3}
    app = create_test_app(config)
    client = app.test_client()
    make = Maker(app, client)
    acme = make.partner()
    for i in range(5):
        make.ticket(acme, title=f"T{i}")
    assert len(client.get("/api/v1/tickets", headers=acme.headers).json["items"]) == 2
    r = client.get("/api/v1/tickets", headers=acme.headers, query_string={"limit": 1000})
    assert r.status_code == 200 and len(r.json["items"]) == 3 and r.json["next_cursor"]
    from ticketing.db import db

    with app.app_context():
        db.engine.dispose()
