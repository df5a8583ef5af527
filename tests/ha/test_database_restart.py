"""While PostgreSQL restarts, the ticket service answers 503 with Retry-After, then recovers.

A private cluster (this test stops it) behind one gunicorn instance: requests
during the outage get the usual JSON error with status 503, never a 500 or a
traceback; once PostgreSQL is back the same workers serve again, and nothing
acknowledged is lost.
"""

from __future__ import annotations

import signal

import pytest
import requests

from tests.harness import start_postgres, wait_until
from tests.harness.ticketing import prepare_database, start_ticketing

pytestmark = pytest.mark.slow


def test_requests_during_a_postgresql_restart_get_503_and_then_succeed(tmp_path, redis_url):
    pg = start_postgres()
    instance = None
    try:
        db_url = pg.create_database()
        keys = prepare_database(db_url)
        instance = start_ticketing(
            tmp_path, env={"TICKETING_DATABASE_URL": db_url, "REDIS_URL": redis_url}, workers=1
        )
        headers = {"X-API-Key": keys.partners[0]}
        body = {"title": "Invoice question", "description": "The amount is wrong."}
        first = requests.post(
            f"{instance.url}/api/v1/tickets", json=body, headers=headers, timeout=10
        )
        assert first.status_code == 201, first.text

        pg.process.signal(signal.SIGINT)  # fast shutdown: connections are cut
        pg.process.popen.wait(30)
        for method, path in (("POST", "/api/v1/tickets"), ("GET", "/api/v1/tickets")):
            down = requests.request(
                method, f"{instance.url}{path}", json=body, headers=headers, timeout=10
            )
            assert down.status_code == 503, (path, down.status_code, down.text)
            assert down.json()["error"]["code"] == "unavailable"
            assert down.headers["Retry-After"] == "1"
        assert requests.get(f"{instance.url}/readyz", timeout=10).status_code == 503

        pg.start()
        wait_until(
            lambda: requests.get(f"{instance.url}/readyz", timeout=10).status_code == 200,
            timeout=30,
            message="ticketing to see PostgreSQL again",
        )
        again = requests.post(
            f"{instance.url}/api/v1/tickets", json=body, headers=headers, timeout=10
        )
        assert again.status_code == 201, again.text
        listing = requests.get(f"{instance.url}/api/v1/tickets", headers=headers, timeout=10)
        assert {t["id"] for t in listing.json()["items"]} == {
            first.json()["id"],
            again.json()["id"],
        }
        # No request was answered 500 (the outbox thread may log its failed passes).
        assert '" 500 ' not in instance.process.log()
        assert "unhandled error" not in instance.process.log()
    finally:
        if instance is not None:
            instance.stop()
        pg.cleanup()
