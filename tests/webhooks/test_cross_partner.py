"""No event ever reaches another partner's endpoint (security review, finding 1).

The scenario of the finding, end to end with the real delivery code and an
HTTP sink: partner A's endpoint is down, an event waits for its retry, A deletes
(or disables) the endpoint, partner B registers an endpoint; on SQLite B used
to get A's old id, and A's queued event then went to B's endpoint, signed with
B's secret. Each way in is closed on its own: the queued events of a deleted or
disabled endpoint are dropped, delivery refuses an event of another partner, and
ids are never reused.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from tests.harness import free_port
from tests.harness.assertions import CORE_TABLES
from tests.harness.outbox import deliver
from tests.harness.seed import partners
from tests.harness.webhooks import deliver_until, register
from ticketing.db import db


def _patch(app, key, endpoint_id, **fields):
    response = app.test_client().patch(
        f"/api/v1/webhooks/{endpoint_id}", json=fields, headers={"X-API-Key": key}
    )
    assert response.status_code == 200, response.json
    return response.json


def _ping(app, key, endpoint_id) -> str:
    response = app.test_client().post(
        f"/api/v1/webhooks/{endpoint_id}/ping", headers={"X-API-Key": key}
    )
    assert response.status_code == 202, response.json
    return response.json["event_id"]


def _delete(app, key, endpoint_id):
    response = app.test_client().delete(
        f"/api/v1/webhooks/{endpoint_id}", headers={"X-API-Key": key}
    )
    assert response.status_code == 204


def _drain(app, rounds: int = 4):
    for _ in range(rounds):  # retries wait their backoff (100-200 ms in these tests)
        deliver(app)
        time.sleep(0.25)


def _outbox_row(app, event_id: str):
    with app.app_context():
        return db.session.execute(
            text("SELECT delivered_at, last_error FROM outbox_messages WHERE dedup_key LIKE :k"),
            {"k": f"webhook:%:{event_id}"},
        ).one()


def _events_of(sink, path, partner_id):
    return [r for r in sink.received(path) if r.json.get("partner_id") == partner_id]


@pytest.mark.parametrize(
    "how",
    [
        "deleted",  # A deletes the endpoint; B registers one (the same id on SQLite before)
        "disabled_then_enabled",  # A disables, then enables it with a new URL
        "disabled_then_deleted",
    ],
)
def test_a_queued_event_of_a_gone_endpoint_is_never_delivered(make_app, http_sink, how):
    app = make_app()
    keys = partners(app)
    down = register(app, keys.a, f"http://127.0.0.1:{free_port()}/down")
    event_id = _ping(app, keys.a, down["id"])
    deliver(app)  # refused: the event waits for a retry
    assert _outbox_row(app, event_id).delivered_at is None

    if how == "deleted":
        _delete(app, keys.a, down["id"])
    elif how == "disabled_then_enabled":
        _patch(app, keys.a, down["id"], enabled=False)
    else:
        _patch(app, keys.a, down["id"], enabled=False)
        _delete(app, keys.a, down["id"])
    row = _outbox_row(app, event_id)
    assert row.delivered_at is not None and row.last_error.startswith("dropped: endpoint")

    if how == "disabled_then_enabled":
        _patch(app, keys.a, down["id"], enabled=True, url=http_sink.url + "/a")
    endpoint_b = register(app, keys.b, http_sink.url + "/b")
    assert endpoint_b["id"] != down["id"]  # ids are never reused
    _drain(app)
    assert http_sink.received() == []

    # B's own events still arrive, and only B's.
    own = _ping(app, keys.b, endpoint_b["id"])
    [request] = deliver_until(app, http_sink, 1, "/b")
    assert request.json["id"] == own and request.json["partner_id"] == keys.b_id
    assert _events_of(http_sink, "/b", keys.a_id) == []


@pytest.mark.parametrize(
    "partner_of_event",
    ["other", "missing", "text"],
)
def test_delivery_drops_an_event_of_another_partner(make_app, http_sink, partner_of_event):
    """Whatever put it there, an outbox row addressing B's endpoint with an event that
    is not B's is dropped and recorded, never sent (nor written into B's log)."""
    from ticketing.webhooks import events

    app = make_app()
    keys = partners(app)
    endpoint_b = register(app, keys.b, http_sink.url + "/b")
    with app.app_context():
        event = events.new_event(keys.a_id, events.PING, {"endpoint_id": endpoint_b["id"]})
        if partner_of_event == "missing":
            del event["partner_id"]
        elif partner_of_event == "text":
            event["partner_id"] = str(keys.b_id)  # not the partner's id (an int)
        events.enqueue_for(endpoint_b["id"], event)
        db.session.commit()
    _drain(app, 2)
    assert http_sink.received() == []
    row = _outbox_row(app, event["id"])
    assert row.delivered_at is not None and row.last_error.startswith("dropped: event")
    log = app.test_client().get(
        f"/api/v1/webhooks/{endpoint_b['id']}/deliveries", headers={"X-API-Key": keys.b}
    )
    assert log.json["items"] == []


def test_deleted_ids_are_never_given_again_through_the_api(make_app, http_sink):
    app = make_app()
    keys = partners(app)
    seen = set()
    for key in (keys.a, keys.b, keys.a):
        endpoint = register(app, key, http_sink.url + "/x")
        assert endpoint["id"] not in seen
        seen.add(endpoint["id"])
        _delete(app, key, endpoint["id"])


#: Every table whose rows have an integer id a partner (or anything pointing at
#: the row) could see.
TABLES = [
    *CORE_TABLES,
    "console_sessions",
    "security_events",
    "outbox_messages",
    "webhook_endpoints",
    "webhook_deliveries",
]


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sqlite_tables_never_reuse_ids(make_app, table):
    app = make_app()
    with app.app_context():
        [sql] = db.session.execute(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
        ).one()
        assert "AUTOINCREMENT" in sql.upper(), sql
        # The table created from the models says the same as the migrated one.
        assert db.metadata.tables[table].dialect_options["sqlite"]["autoincrement"] is True
