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


def test_every_list_is_a_page_of_items_with_a_cursor(app, client, make):
    """Tickets, messages, attachments and audit trails all answer ``{items, next_cursor}``,
    page with the same signed cursors, and say so in the OpenAPI document."""
    acme, agent = make.partner(), make.staff()
    tid = make.ticket(acme)["id"]
    other = make.ticket(acme, title="Another one")["id"]
    for n in range(3):
        client.post(
            f"/api/v1/tickets/{tid}/messages", headers=acme.headers, json={"body": f"Note {n}"}
        )
        make.upload(acme, tid, filename=f"log-{n}.txt")
    client.post(
        f"/api/v1/staff/tickets/{tid}/messages",
        headers=agent.headers,
        json={"body": "staff only", "internal": True},
    )
    make.upload(agent, tid, filename="analysis.txt", staff=True, internal="true")
    lists = [
        (f"/api/v1/tickets/{tid}/messages", acme, 3),
        (f"/api/v1/tickets/{tid}/attachments", acme, 3),
        (f"/api/v1/staff/tickets/{tid}/messages", agent, 4),
        (f"/api/v1/staff/tickets/{tid}/attachments", agent, 4),
        # status, priority, category; and needs_triage when the model is unsure
        (f"/api/v1/staff/tickets/{tid}/audit", agent, None),
    ]
    for url, party, total in lists:
        whole = client.get(url, headers=party.headers)
        assert whole.status_code == 200, (url, whole.json)
        assert set(whole.json) == {"items", "next_cursor"}, url
        assert whole.json["next_cursor"] is None, url
        assert len(whole.json["items"]) == total or (total is None and whole.json["items"]), url
        ids = [row["id"] for row in whole.json["items"]]
        assert ids == sorted(ids), url  # oldest first

        walked, cursor = [], None
        while True:
            page = client.get(
                url,
                headers=party.headers,
                query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
            )
            assert page.status_code == 200, (url, page.json)
            assert len(page.json["items"]) <= 2
            walked += [row["id"] for row in page.json["items"]]
            cursor = page.json["next_cursor"]
            if cursor is None:
                break
            # A cursor belongs to its list: another ticket's or another kind's is refused.
            kind = url.rsplit("/", 1)[1]
            elsewhere = url.replace(f"/{tid}/", f"/{other}/")
            assert_error(
                client.get(elsewhere, headers=party.headers, query_string={"cursor": cursor}),
                400,
                "invalid_cursor",
            )
            swapped = url.replace(kind, "messages" if kind != "messages" else "attachments")
            assert_error(
                client.get(swapped, headers=party.headers, query_string={"cursor": cursor}),
                400,
                "invalid_cursor",
            )
        assert walked == ids, url
        assert_error(
            client.get(url, headers=party.headers, query_string={"limit": 0}),
            422,
            "validation_error",
        )
        assert_error(
            client.get(url, headers=party.headers, query_string={"sort": "id"}),
            422,
            "validation_error",
        )

    # The partner's pages never hold staff's internal rows, the last page included.
    seen = client.get(
        f"/api/v1/tickets/{tid}/messages", headers=acme.headers, query_string={"limit": 1}
    )
    cursor, bodies = seen.json["next_cursor"], [m["body"] for m in seen.json["items"]]
    while cursor:
        seen = client.get(
            f"/api/v1/tickets/{tid}/messages",
            headers=acme.headers,
            query_string={"limit": 1, "cursor": cursor},
        )
        bodies += [m["body"] for m in seen.json["items"]]
        cursor = seen.json["next_cursor"]
    assert bodies == ["Note 0", "Note 1", "Note 2"]

    # The OpenAPI document: every list (a GET without a path's last {id}) is such a page.
    spec = client.get("/api/openapi.json").json
    lists_in_spec = 0
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if get is None or not path.startswith(("/api/v1/tickets", "/api/v1/staff")):
            continue
        if path.endswith("}"):
            continue  # one object (a ticket, a file)
        body = get["responses"]["200"]["content"]["application/json"]["schema"]
        if "$ref" in body:
            body = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        properties = body["properties"]
        assert set(properties) == {"items", "next_cursor"}, path
        assert properties["items"]["type"] == "array", path
        if "tickets" in path:
            names = {p["name"] for p in get.get("parameters", []) if p["in"] == "query"}
            assert {"cursor", "limit"} <= names, path
        lists_in_spec += 1
    assert lists_in_spec >= 7  # tickets and messages and attachments (each 2), audit


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
