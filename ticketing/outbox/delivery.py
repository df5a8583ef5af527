"""Post claimed outbox messages to Alertmanager's v2 API and record the outcome.

Each message becomes one Alertmanager alert:

    {"labels": {...}, "annotations": {...}, "startsAt": <event time>,
     "endsAt": <time of posting + alert_ttl>, "generatorURL": ...}

``startsAt`` never changes and the labels identify the event, so posting the
same message again (after a lost response or a crashed deliverer) is the same
alert for Alertmanager, merged into the one it holds instead of notified again.
``endsAt`` makes the alert resolve by itself: a notification is an event, not a
condition that something else would end.

With several Alertmanager URLs (an HA pair) every replica gets the alerts and
a message counts as delivered when at least one accepted it; the replicas
share it by gossip and deduplicate their notifications.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests

from ticketing.outbox.metrics import notifications_delivered, notifications_failed
from ticketing.outbox.models import utcnow
from ticketing.outbox.settings import OutboxSettings
from ticketing.outbox.store import (
    Claimed,
    claim_due,
    isoformat,
    mark_delivered,
    mark_failed,
    parse_isoformat,
)

log = logging.getLogger("ticketing.outbox")

_http = requests.Session()


class DeliveryError(RuntimeError):
    """No Alertmanager accepted the alerts; ``client_error`` when every answer was a 4xx."""

    def __init__(self, message: str, client_error: bool = False):
        super().__init__(message)
        self.client_error = client_error


@dataclass
class DeliveryReport:
    """What one :func:`deliver_due` pass did."""

    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed

    def merge(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.errors.extend(other.errors)

    def __str__(self) -> str:
        return f"delivered {self.delivered}, failed {self.failed}"


def to_alert(payload: dict[str, Any], ttl: float, now: datetime | None = None) -> dict[str, Any]:
    """The Alertmanager alert for one outbox payload, posted at ``now``."""
    now = now or utcnow()
    starts_at = parse_isoformat(payload["startsAt"])
    alert = {
        "labels": payload["labels"],
        "annotations": payload.get("annotations", {}),
        "startsAt": payload["startsAt"],
        "endsAt": isoformat(max(now, starts_at) + timedelta(seconds=ttl)),
    }
    if payload.get("generatorURL"):
        alert["generatorURL"] = payload["generatorURL"]
    return alert


def post_alerts(settings: OutboxSettings, alerts: list[dict[str, Any]]) -> None:
    """POST ``alerts`` to every configured Alertmanager; raise DeliveryError if none took them."""
    errors: list[str] = []
    client_errors = 0
    accepted = False
    for base in settings.alertmanager_urls:
        url = f"{base}/api/v2/alerts"
        try:
            response = _http.post(url, json=alerts, timeout=settings.request_timeout)
        except requests.RequestException as exc:
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        if 200 <= response.status_code < 300:
            accepted = True
        else:
            client_errors += 400 <= response.status_code < 500
            errors.append(f"{url}: HTTP {response.status_code} {response.text.strip()[:300]}")
    if not accepted:
        raise DeliveryError("; ".join(errors), client_error=client_errors == len(errors))
    if errors:
        log.warning("outbox: an Alertmanager replica refused alerts: %s", "; ".join(errors))


def _deliver_batch(settings: OutboxSettings, batch: list[Claimed], report: DeliveryReport) -> bool:
    """Post one claimed batch; returns False when Alertmanager could not be reached."""
    now = utcnow()
    try:
        post_alerts(settings, [to_alert(c.payload, settings.alert_ttl, now) for c in batch])
    except DeliveryError as exc:
        if exc.client_error and len(batch) > 1:
            # Alertmanager rejected the batch as invalid: post one by one, so
            # one bad message does not hold back the others.
            return all([_deliver_batch(settings, [c], report) for c in batch])
        mark_failed(batch, str(exc), settings.backoff)
        for c in batch:
            notifications_failed.labels(kind=c.kind).inc()
        report.failed += len(batch)
        report.errors.append(str(exc))
        log.warning(
            "outbox: %d notification(s) not delivered (attempt %s), retrying later: %s",
            len(batch),
            ",".join(str(c.attempts) for c in batch),
            exc,
        )
        return exc.client_error
    mark_delivered([c.id for c in batch])
    for c in batch:
        notifications_delivered.labels(kind=c.kind).inc()
    report.delivered += len(batch)
    log.info("outbox: delivered %s", ", ".join(c.dedup_key for c in batch))
    return True


def deliver_due(
    settings: OutboxSettings, max_batches: int | None = None, exclude_kinds: Collection[str] = ()
) -> DeliveryReport:
    """Claim and post due messages batch by batch until none is due.

    Runs inside an application context.  The pass stops at the first batch
    Alertmanager could not take (it is probably down: the rest waits for the
    next pass instead of each batch waiting for its own timeout).  Kinds in
    ``exclude_kinds`` belong to other delivery channels (partner webhooks).
    """
    report = DeliveryReport()
    batches = 0
    while max_batches is None or batches < max_batches:
        batch = claim_due(settings.batch_size, settings.claim_timeout, exclude_kinds=exclude_kinds)
        if not batch:
            break
        batches += 1
        if not _deliver_batch(settings, batch, report):
            break
        if len(batch) < settings.batch_size:
            break
    return report
