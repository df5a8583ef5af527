"""The per-process cache of accepted API keys: no query for a known key, changes still honoured.

A change committed through the ORM in this process is refused at once; one
made elsewhere (another worker: here a plain SQL update outside the ORM
session) is refused when the cached entry expires.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import text

from tests.harness.app import create_test_app, ticketing_config
from tests.harness.assertions import assert_error
from tests.harness.sql_capture import capture
from ticketing import signals
from ticketing.auth import LAST_USED_RESOLUTION
from ticketing.auth.key_cache import KeyCache
from ticketing.db import db
from ticketing.models import ApiKey, Partner, Staff, utcnow

AUTH_TABLES = ("api_keys", "partners", "staff")


def _auth_queries(seen) -> list:
    """Statements that look up a key or its owner (the search index's insert names
    the partner for the ticket's document: not a key check)."""
    return [
        s
        for table in AUTH_TABLES
        for s in seen.touching(table)
        if not s.sql.lstrip().upper().startswith("INSERT INTO TICKET_SEARCH")
    ]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app) -> Clock:
    clock = Clock()
    app.extensions["ticketing_key_cache"].clock = clock
    return clock


@pytest.fixture
def failures(app):
    found = []

    def on_failed(sender, key_prefix, reason):
        found.append(reason)

    with signals.auth_failed.connected_to(on_failed, app):
        yield found


def test_a_known_key_costs_no_query(app, client, make):
    acme = make.partner()
    with capture(app) as first:
        assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
    assert _auth_queries(first)  # checked against the database once ...
    with capture(app) as again:
        for _ in range(3):
            assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
            assert (
                client.post(
                    "/api/v1/tickets",
                    headers=acme.headers,
                    json={"title": "Hello", "description": "There."},
                ).status_code
                == 201
            )
    assert _auth_queries(again) == []  # ... then trusted for the TTL
    # A wrong key never is: every attempt is checked.
    wrong = acme.key[:-1] + ("A" if acme.key[-1] != "A" else "B")
    with capture(app) as guesses:
        for _ in range(2):
            assert_error(client.get("/api/v1/tickets", headers={"X-API-Key": wrong}), 401)
    assert len(guesses.touching("api_keys")) == 2


def test_changes_in_this_process_are_refused_at_once(app, client, make, runner, failures):
    acme, globex = make.partner("Acme"), make.partner("Globex")
    agent = make.staff()
    for party, path in (
        (acme, "/api/v1/tickets"),
        (globex, "/api/v1/tickets"),
        (agent, "/api/v1/staff/tickets"),
    ):
        assert client.get(path, headers=party.headers).status_code == 200  # all cached

    # Revoked with the CLI: refused on the next request.
    assert runner.invoke(args=["revoke-key", acme.key.split("_")[1]]).exit_code == 0
    assert_error(client.get("/api/v1/tickets", headers=acme.headers), 401, "unauthorized")
    # A suspended partner, a deactivated staff member (ORM changes).
    with app.app_context():
        db.session.get(Partner, globex.id).status = "suspended"
        db.session.get(Staff, agent.id).active = False
        db.session.commit()
    assert_error(client.get("/api/v1/tickets", headers=globex.headers), 401, "unauthorized")
    assert_error(client.get("/api/v1/staff/tickets", headers=agent.headers), 401, "unauthorized")
    assert failures == ["revoked", "inactive", "inactive"]


def test_a_role_change_applies_to_the_next_request(app, client, make):
    agent, other = make.staff("agent"), make.staff("agent")
    tid = make.ticket(make.partner())["id"]
    assign = f"/api/v1/staff/tickets/{tid}/assign"
    assert_error(client.post(assign, headers=agent.headers, json={"assignee_id": other.id}), 403)
    with app.app_context():
        db.session.get(Staff, agent.id).role = "admin"
        db.session.commit()
    assert (
        client.post(assign, headers=agent.headers, json={"assignee_id": other.id}).status_code
        == 200
    )


def test_a_bulk_update_through_the_session_forgets_keys(app, client, make):
    acme = make.partner()
    assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
    with app.app_context():
        db.session.execute(
            db.update(Partner).where(Partner.id == acme.id).values(status="suspended")
        )
        db.session.commit()
    assert_error(client.get("/api/v1/tickets", headers=acme.headers), 401, "unauthorized")


def test_other_processes_changes_apply_when_the_entry_expires(app, client, make, clock, failures):
    acme = make.partner()
    assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
    # Another worker revokes the key: this process's session never sees it.
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(
                text("UPDATE api_keys SET revoked_at = :now WHERE prefix = :p"),
                {"now": utcnow(), "p": acme.key.split("_")[1]},
            )
    ttl = app.extensions["ticketing_key_cache"].ttl
    clock.now += ttl - 0.5
    assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200  # cached
    clock.now += 1.0
    assert_error(client.get("/api/v1/tickets", headers=acme.headers), 401, "unauthorized")
    assert failures == ["revoked"]


def test_last_use_is_written_once_a_minute(app, client, make):
    acme = make.partner()
    prefix = acme.key.split("_")[1]

    def last_used():
        with app.app_context():
            return db.session.execute(
                db.select(ApiKey.last_used_at).where(ApiKey.prefix == prefix)
            ).scalar_one()

    assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
    first = last_used()
    assert first is not None
    with capture(app) as seen:
        for _ in range(3):
            client.get("/api/v1/tickets", headers=acme.headers)
    assert seen.touching("api_keys") == [] and last_used() == first

    # A minute later (as this process remembers it), the next request records it again.
    cache = app.extensions["ticketing_key_cache"]
    (entry,) = cache._entries.values()
    entry.last_used_at -= LAST_USED_RESOLUTION
    with app.app_context():
        db.session.execute(
            db.update(ApiKey)
            .where(ApiKey.prefix == prefix)
            .values(last_used_at=first - LAST_USED_RESOLUTION)
        )
        db.session.commit()
    with capture(app) as seen:
        for _ in range(3):
            client.get("/api/v1/tickets", headers=acme.headers)
    assert [w for w in seen.writes() if w[1] == "api_keys"] == [("UPDATE", "api_keys")]
    assert last_used() > first - timedelta(seconds=1)


def test_a_ttl_of_zero_checks_every_request(app, db_url, tmp_path, make):
    acme = make.partner()
    config = ticketing_config(db_url, tmp_path)
    config["TICKETING"]["api"] = {"key_cache_ttl": 0}
    uncached = create_test_app(config, migrate=False)
    assert "ticketing_key_cache" not in uncached.extensions
    with uncached.app_context():
        upgrade()  # already there: nothing to do
    client = uncached.test_client()
    with capture(uncached) as seen:
        for _ in range(3):
            assert client.get("/api/v1/tickets", headers=acme.headers).status_code == 200
    assert [s.verb for s in seen.touching("api_keys")].count("SELECT") == 3
    with uncached.app_context():
        db.session.remove()
        db.engine.dispose()


def test_cache_entries_expire_and_stay_bounded():
    clock = Clock()
    cache = KeyCache(ttl=5.0, size=3, clock=clock)
    for n in range(5):
        cache.put(f"key{n}", f"actor{n}", None)
    assert len(cache) == 3 and cache.get("key0") is None and cache.get("key4").actor == "actor4"
    clock.now += 5.0
    assert cache.get("key4") is None
    # An answer read before the cache was emptied is not kept.
    generation = cache.generation
    cache.clear()
    cache.put("key9", "stale", None, generation)
    assert cache.get("key9") is None
    cache.put("key9", "fresh", None, cache.generation)
    assert cache.get("key9").actor == "fresh"


def test_the_ttl_is_checked_like_any_duration():
    from ticketing.config import ConfigError, load_sections
    from ticketing.desk.settings import check_core

    assert check_core(load_sections()).api.key_cache_ttl == 5.0
    assert (
        check_core(load_sections(overrides={"api": {"key_cache_ttl": "500ms"}})).api.key_cache_ttl
        == 0.5
    )
    with pytest.raises(ConfigError) as refused:
        check_core(load_sections(overrides={"api": {"key_cache_ttl": "-1s"}}))
    assert any(p.startswith("api.key_cache_ttl:") for p in refused.value.problems)
