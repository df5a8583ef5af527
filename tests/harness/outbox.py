"""The notification outbox: fast timings, delivery passes, what reached the webhook sink."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from flask import Flask

from tests.harness import free_port
from tests.harness.seed import Keys
from ticketing.db import db

#: Short retry timings, so that tests wait seconds, not minutes.
FAST_OUTBOX = {
    "initial_backoff": "1s",
    "max_backoff": "2s",
    "request_timeout": "2s",
    "claim_timeout": "10s",
    "alert_ttl": "2m",
    "poll_interval": "200ms",
}


def nowhere() -> str:
    """The URL of a port nobody listens on: an Alertmanager that is down."""
    return f"http://127.0.0.1:{free_port()}"


def create_ticket(
    app: Flask,
    keys: Keys,
    title: str = "Invoice question",
    description: str = "Our invoice shows the wrong amount.",
    **fields,
) -> dict:
    response = app.test_client().post(
        "/api/v1/tickets",
        json={"title": title, "description": description, **fields},
        headers={"X-API-Key": keys.partner},
    )
    assert response.status_code == 201, response.json
    return response.json


def deliver(app: Flask):
    with app.app_context():
        return app.extensions["outbox"].deliver()


def outbox_rows(app: Flask):
    from ticketing.outbox import OutboxMessage

    with app.app_context():
        rows = db.session.execute(db.select(OutboxMessage).order_by(OutboxMessage.id)).scalars()
        return [_detached(row) for row in rows]


def _detached(row):
    db.session.expunge(row)
    return row


def webhook_config(url: str) -> dict:
    return {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname", "ticket"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": url, "send_resolved": False}]}],
    }


def about_ticket(ticket_id):
    """A predicate: the webhook post notifies the ticket's alert as firing."""

    def about(request) -> bool:
        return any(
            alert["status"] == "firing" and alert["labels"].get("ticket") == str(ticket_id)
            for alert in request.json["alerts"]
        )

    return about


def notifications_about(sink, ticket_id) -> list:
    """Webhook posts received so far that notify the ticket's alert as firing."""
    return [r for r in sink.received("/hook") if about_ticket(ticket_id)(r)]


def quick_stop(proc) -> None:
    """gunicorn's quick shutdown (SIGINT): its graceful one (SIGTERM) takes seconds."""
    proc.signal(signal.SIGINT)
    try:
        proc.popen.wait(10)
    except subprocess.TimeoutExpired:
        pass  # a worker slow to exit (gunicorn kills it at graceful_timeout): stop() ends the group
    proc.stop()


def ticketing_env(db_url: str, alertmanager_url: str, tmp_path: Path, **outbox) -> dict:
    """Environment for a ticketing process (gunicorn or the flask CLI) on ``db_url``."""
    import yaml

    config = tmp_path / "ticketing-test.yml"
    config.write_text(yaml.safe_dump({"outbox": {**FAST_OUTBOX, **outbox}}))
    return {
        "TICKETING_DATABASE_URL": db_url,
        "TICKETING_CONFIG": str(config),
        "ALERTMANAGER_URL": alertmanager_url,
        "FLASK_APP": "ticketing",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
