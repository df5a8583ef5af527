"""Delivery to a real Alertmanager: outages, restarts and re-posts notify exactly once.

Alertmanager's only receiver is a webhook into ``http_sink``, one group per
ticket (group_wait 0s, group_interval 1s), so every notification it sends
shows up there within a second or two. "Exactly once" is checked by waiting
several group intervals after the first notification and counting again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from prometheus_client import REGISTRY
from sqlalchemy import update

from tests.harness import free_port, http_ready, wait_until
from tests.harness.outbox import (
    about_ticket,
    create_ticket,
    deliver,
    notifications_about,
    outbox_rows,
    quick_stop,
    ticketing_env,
)
from tests.harness.seed import seed
from ticketing.db import db
from ticketing.outbox import OutboxMessage
from ticketing.outbox.delivery import post_alerts, to_alert
from ticketing.outbox.models import utcnow
from ticketing.outbox.store import claim_due, isoformat

ROOT = Path(__file__).resolve().parents[2]
#: What Alertmanager does with a post does not depend on ticketing's database:
#: the outage test runs on both, the restart on PostgreSQL (a production
#: deployment's database), the others on SQLite.
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
#: Long enough for Alertmanager to have sent anything it was going to send again.
SETTLE = 3.0


def counter(name: str, kind: str = "ticket_created") -> float:
    return REGISTRY.get_sample_value(name, {"kind": kind}) or 0.0


def assert_notified_once(sink, am, ticket_id) -> dict:
    """One webhook post about the ticket, and still one after a few group intervals."""
    [first] = sink.wait_for(1, path="/hook", timeout=30, predicate=about_ticket(ticket_id))
    time.sleep(SETTLE)
    assert len(notifications_about(sink, ticket_id)) == 1
    assert len(am.alerts(ticket=str(ticket_id))) == 1
    [alert] = [a for a in first.json["alerts"] if a["labels"].get("ticket") == str(ticket_id)]
    return alert


def test_ticket_created_while_alertmanager_is_down_is_notified_once_it_returns(
    make_app, webhook_alertmanager, http_sink
):
    am = webhook_alertmanager
    am.stop()
    app = make_app(am.url)
    keys = seed(app)
    failed_before = counter("notifications_failed_total")
    delivered_before = counter("notifications_delivered_total")

    ticket = create_ticket(app, keys, title="Production down: payments failing")
    before = utcnow()
    report = deliver(app)
    after = utcnow()
    assert (report.delivered, report.failed) == (0, 1)
    [row] = outbox_rows(app)
    assert row.delivered_at is None and row.attempts == 1
    assert am.url in row.last_error
    # Retried after initial_backoff (1 s), not before.
    assert before + timedelta(seconds=1) <= row.next_attempt_at <= after + timedelta(seconds=1)
    assert counter("notifications_failed_total") == failed_before + 1

    am.start()
    wait_until(
        lambda: deliver(app).delivered,
        timeout=20,
        interval=0.2,
        message="delivery after Alertmanager came back",
    )
    [row] = outbox_rows(app)
    assert row.delivered_at is not None and row.attempts == 2 and row.last_error is None
    assert counter("notifications_delivered_total") == delivered_before + 1
    assert counter("notifications_failed_total") == failed_before + 1

    alert = assert_notified_once(http_sink, am, ticket["id"])
    assert alert["labels"]["alertname"] == "SupportTicketCreated"
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"].startswith(
        f"New critical priority ticket #{ticket['id']}"
    )
    # The alert starts when the ticket was created, not when Alertmanager came back.
    assert alert["startsAt"].startswith(ticket["created_at"][:19])
    assert deliver(app).attempted == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_ticketing_restart_in_between_loses_and_duplicates_nothing(
    make_app, webhook_alertmanager, http_sink, processes, tmp_path
):
    """Ticketing under gunicorn (two workers, each with its delivery thread) is
    killed while Alertmanager is down; the next ticketing process delivers."""
    am = webhook_alertmanager
    am.stop()
    app = make_app(am.url)  # migrates the database; used to look into it
    keys = seed(app)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **ticketing_env(make_app.db_url, am.url, tmp_path),
        "TICKETING_BIND": f"127.0.0.1:{port}",
        "TICKETING_WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(ROOT / "ticketing" / "runtime" / "gunicorn.conf.py"),
    ]

    first = processes.start(
        cmd, tmp_path, ready=http_ready(f"{url}/healthz"), name="ticketing-1", env=env
    )
    response = requests.post(
        f"{url}/api/v1/tickets",
        headers={"X-API-Key": keys.partner},
        json={"title": "Invoice question", "description": "Wrong amount."},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    ticket = response.json()
    # The new ticket wakes a delivery thread at once; its post fails.
    wait_until(
        lambda: outbox_rows(app)[0].attempts >= 1,
        timeout=20,
        message="a delivery attempt by the first ticketing process",
    )
    first.kill()  # as a crash would: no chance to finish anything
    assert outbox_rows(app)[0].delivered_at is None

    am.start()
    second = processes.start(
        cmd, tmp_path, ready=http_ready(f"{url}/healthz"), name="ticketing-2", env=env
    )
    alert = assert_notified_once(http_sink, am, ticket["id"])
    assert alert["labels"]["severity"] == "info"
    [row] = outbox_rows(app)
    assert row.delivered_at is not None and row.attempts >= 2

    # The second process counted its delivery (summed over its gunicorn workers).
    metrics = requests.get(f"{url}/metrics", timeout=10).text
    assert 'notifications_delivered_total{kind="ticket_created"} 1.0' in metrics
    quick_stop(second)


@SQLITE_ONLY
def test_cli_delivers_the_backlog_from_a_new_process(
    make_app, webhook_alertmanager, http_sink, tmp_path
):
    am = webhook_alertmanager
    am.stop()
    app = make_app(am.url)
    keys = seed(app)
    ticket = create_ticket(app, keys)
    env = {**ticketing_env(make_app.db_url, am.url, tmp_path)}

    def flask(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flask", "outbox", *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )

    down = flask("deliver", "--once")
    assert down.returncode == 1, down.stderr
    assert down.stdout.startswith("delivered 0, failed 1; pending 1")
    assert am.url in down.stderr
    status = flask("status")
    assert status.stdout.startswith("pending 1, delivered 0")
    assert f"ticket_created:{ticket['id']}" in status.stdout and "attempts 1" in status.stdout

    am.start()
    wait_until(
        lambda: outbox_rows(app)[0].next_attempt_at <= utcnow(),
        timeout=10,
        message="the retry to fall due (initial_backoff)",
    )
    up = flask("deliver", "--once")
    assert up.returncode == 0, up.stderr
    assert up.stdout.startswith("delivered 1, failed 0; pending 0")
    assert_notified_once(http_sink, am, ticket["id"])
    assert deliver(app).attempted == 0


@SQLITE_ONLY
def test_a_repost_after_a_lost_answer_is_not_notified_twice(
    make_app, webhook_alertmanager, http_sink
):
    """Alertmanager took the alert but the deliverer died before recording it: the
    claim times out, the message is posted again, and Alertmanager merges it."""
    am = webhook_alertmanager
    app = make_app(am.url)
    settings = app.extensions["outbox"].settings
    keys = seed(app)
    ticket = create_ticket(app, keys)
    with app.app_context():
        [claimed] = claim_due(10, settings.claim_timeout)
        post_alerts(settings, [to_alert(claimed.payload, settings.alert_ttl)])
    http_sink.wait_for(1, path="/hook", timeout=30, predicate=about_ticket(ticket["id"]))

    # The claim times out (moved into the past here instead of waiting for it).
    with app.app_context():
        db.session.execute(
            update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert deliver(app).delivered == 1
    [row] = outbox_rows(app)
    assert row.attempts == 2 and row.delivered_at is not None
    assert_notified_once(http_sink, am, ticket["id"])


@SQLITE_ONLY
def test_an_alert_alertmanager_refuses_does_not_hold_back_the_others(
    make_app, webhook_alertmanager, http_sink
):
    am = webhook_alertmanager
    app = make_app(am.url)
    keys = seed(app)
    ticket = create_ticket(app, keys)
    with app.app_context():  # a row no Alertmanager accepts: an alert without labels
        db.session.add(
            OutboxMessage(
                kind="broken",
                dedup_key="broken",
                payload={"labels": {}, "annotations": {}, "startsAt": isoformat(utcnow())},
            )
        )
        db.session.commit()

    report = deliver(app)
    assert (report.delivered, report.failed) == (1, 1)
    rows = {row.kind: row for row in outbox_rows(app)}
    assert rows["ticket_created"].delivered_at is not None
    broken = rows["broken"]
    assert broken.delivered_at is None and "HTTP 400" in broken.last_error
    assert_notified_once(http_sink, am, ticket["id"])
