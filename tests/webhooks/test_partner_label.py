"""The receiver reads the ``partner`` label as ASCII digits only (security review, finding 5)."""

from __future__ import annotations

import pytest

from tests.harness.seed import partners
from tests.harness.webhooks import TOKEN

PATH = "/internal/alertmanager/partner-alerts"


def _notification(label: str) -> dict:
    return {
        "version": "4",
        "groupKey": '{}/{scope="partner"}:{partner="x"}',
        "status": "firing",
        "receiver": "partner-webhooks",
        "truncatedAlerts": 0,
        "groupLabels": {"partner": label},
        "externalURL": "http://am",
        "alerts": [
            {
                "status": "firing",
                "fingerprint": f"fp-{label.encode().hex()}",
                "startsAt": "2024-05-01T09:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "labels": {
                    "alertname": "PartnerTransactionFailureRatioHigh",
                    "partner": label,
                    "severity": "warning",
                    "scope": "partner",
                },
                "annotations": {"summary": "s", "description": "d"},
            }
        ],
    }


@pytest.mark.parametrize(
    ("form", "accepted"),
    [
        ("{a}", True),  # the partner's id, as Prometheus writes it
        ("\uff11", False),  # full-width digit one
        ("\u0661", False),  # Arabic-Indic digit one
        ("\u06f1", False),  # Extended Arabic-Indic digit one
        ("\u0967", False),  # Devanagari digit one
        ("\u00b9", False),  # superscript one
        ("\U0001d7cf", False),  # mathematical bold digit one
        ("+{a}", False),
        ("-{a}", False),
        (" {a}", False),
        ("{a} ", False),
        ("{a}\n", False),
        ("1_0", False),
        ("0x1", False),
        ("{a}.0", False),
        ("1e0", False),
        ("", False),
        ("0", False),
        ("99999999999999999999", False),
    ],
)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_partner_label_forms(make_app, form, accepted):
    app = make_app()
    keys = partners(app)
    assert keys.a_id == 1  # the forms above spell partner 1 in other ways
    label = form.format(a=keys.a_id)
    register_response = app.test_client().post(
        "/api/v1/webhooks",
        json={"url": "http://127.0.0.1:9/hook"},
        headers={"X-API-Key": keys.a},
    )
    assert register_response.status_code == 201
    response = app.test_client().post(
        PATH, json=_notification(label), headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.json
    assert response.json["queued"] == (1 if accepted else 0)
    assert response.json["ignored"] == (0 if accepted else 1)
