"""One Alertmanager notification of 10,000 alerts, each for its own partner: all queued
once (a body far above api.max_json_bytes, the receiver's own limit), in bulk."""

from __future__ import annotations

import json
import time

from sqlalchemy import func, insert, select

from tests.harness.webhooks import TOKEN
from ticketing.db import db
from ticketing.models import Partner, utcnow
from ticketing.outbox import OutboxMessage
from ticketing.webhooks.models import WebhookEndpoint

PATH = "/internal/alertmanager/partner-alerts"
COUNT = 10_000


def bulk_partners_with_endpoints(app, count: int) -> list[int]:
    """``count`` partners, each with one endpoint, by two bulk inserts."""
    with app.app_context():
        first = db.session.execute(select(func.coalesce(func.max(Partner.id), 0))).scalar_one()
        now = utcnow()
        db.session.execute(
            insert(Partner),
            [{"name": f"Bulk {n}", "status": "active", "created_at": now} for n in range(count)],
        )
        ids = list(
            db.session.execute(
                select(Partner.id).where(Partner.id > first).order_by(Partner.id)
            ).scalars()
        )
        db.session.execute(
            insert(WebhookEndpoint),
            [
                {
                    "partner_id": partner_id,
                    "url": f"https://partner-{partner_id}.example.com/hook",
                    "events": ["alert.firing", "alert.resolved"],
                    "secret": "whsec_bulk",
                    "enabled": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for partner_id in ids
            ],
        )
        db.session.commit()
        return ids


def notification(partner_ids: list[int]) -> dict:
    return {
        "version": "4",
        "groupKey": '{}/{scope="partner"}:{}',
        "status": "firing",
        "receiver": "partner-webhooks",
        "truncatedAlerts": 0,
        "groupLabels": {},
        "externalURL": "http://am",
        "alerts": [
            {
                "status": "firing",
                "fingerprint": f"{partner_id:016x}",
                "startsAt": "2024-05-01T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "labels": {
                    "alertname": "PartnerTransactionFailureRatioHigh",
                    "partner": str(partner_id),
                    "severity": "warning",
                    "team": "support",
                    "scope": "partner",
                },
                "annotations": {
                    "summary": "31% of your transactions fail",
                    "description": f"Over 10% of the transactions of partner {partner_id}"
                    " have failed for 2 minutes.",
                    "runbook_url": "https://runbooks.example/PartnerTransactionFailureRatioHigh",
                },
            }
            for partner_id in partner_ids
        ],
    }


def test_a_notification_of_ten_thousand_alerts_is_queued_once(make_app):
    app = make_app()
    ids = bulk_partners_with_endpoints(app, COUNT)
    body = notification(ids)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    started = time.monotonic()
    response = client.post(PATH, json=body, headers=headers)
    elapsed = time.monotonic() - started
    size = len(json.dumps(body))
    print(f"{COUNT} alerts ({size / 1e6:.1f} MB) queued in {elapsed:.2f}s")
    assert response.status_code == 200, response.json
    assert response.json == {"queued": COUNT, "duplicates": 0, "ignored": 0}

    again = client.post(PATH, json=body, headers=headers)  # the other Alertmanager
    assert again.json == {"queued": 0, "duplicates": COUNT, "ignored": 0}

    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.payload).where(OutboxMessage.kind == "partner_webhook")
        ).scalars()
        by_partner: dict[int, int] = {}
        for payload in rows:
            partner_id = payload["event"]["partner_id"]
            assert payload["event"]["type"] == "alert.firing"
            by_partner[partner_id] = by_partner.get(partner_id, 0) + 1
    assert by_partner == dict.fromkeys(ids, 1)


def test_the_api_limit_still_holds_elsewhere(make_app):
    app = make_app()
    big = {"title": "x", "description": "y" * 200_000}
    response = app.test_client().post("/api/v1/tickets", json=big, headers={"X-API-Key": "k"})
    assert response.status_code == 413
