"""Scheduled maintenance: planned in the console, shown ahead, silenced in Alertmanager.

    mt = maintenance.schedule(settings, "Pool rebalancing", "Purchases may be slow.",
                              ["energy-pool"], starts_at, ends_at, actor=("staff", 3))
    maintenance.finish(mt, ("staff", 3))        # done early: the silence is removed
    maintenance.cancel(mt, ("staff", 3))        # called off: likewise

**Silences.** Scheduling queues (in the outbox, same transaction) the creation
of an Alertmanager silence through its v2 API (``POST /api/v2/silences``):
matchers ``component=~"<the components>"``, ``startsAt``/``endsAt`` the window,
so Alertmanager itself silences exactly the window and on-call is not paged for
planned work; alerts of other components are untouched. Finishing early or
cancelling queues its removal (``DELETE /api/v2/silence/{id}``). Both are
retried like every outbox message, so an Alertmanager outage loses nothing.

**States.** scheduled -> in_progress (its start passed) -> completed (its end
passed, or finished early); or cancelled. :func:`advance` moves them on time and
tells partners (``maintenance.started``, ``maintenance.completed``); the outbox's
delivery thread calls it on every pass, each transition once across processes.
The page reads the state from the clock too (:func:`effective_status`), so it is
right to the second even between passes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import requests
from flask import current_app
from sqlalchemy import update

from ticketing.db import db
from ticketing.models import utcnow
from ticketing.outbox.delivery import DeliveryReport
from ticketing.outbox.metrics import notifications_delivered, notifications_failed
from ticketing.outbox.store import (
    claim_due,
    enqueue_payload,
    isoformat,
    mark_delivered,
    mark_failed,
)
from ticketing.status import incidents
from ticketing.status.incidents import Actor, IncidentRefused
from ticketing.status.models import Maintenance
from ticketing.status.settings import StatusSettings

log = logging.getLogger(__name__)

KIND = "status_silence"
SCHEDULED = "maintenance.scheduled"
STARTED = "maintenance.started"
COMPLETED = "maintenance.completed"
CREATED_BY = "partnerwatch status page"
_http = requests.Session()


def effective_status(mt: Maintenance, now: datetime) -> str:
    """The state by the clock: scheduled, in_progress, completed or cancelled."""
    if mt.status in ("completed", "cancelled"):
        return mt.status
    if now >= mt.ends_at:
        return "completed"
    if now >= mt.starts_at:
        return "in_progress"
    return "scheduled"


def get(maintenance_id: int) -> Maintenance:
    from ticketing.errors import ApiError

    mt = db.session.get(Maintenance, maintenance_id)
    if mt is None:
        raise ApiError(404, "not_found", "no such maintenance")
    return mt


def schedule(
    settings: StatusSettings,
    title: str,
    body: str,
    components: Iterable[str],
    starts_at: datetime,
    ends_at: datetime,
    actor: Actor,
) -> Maintenance:
    """Plan a window; partners hear ``maintenance.scheduled``; its silence is queued."""
    chosen = incidents._check(settings, components, "none")
    now = utcnow()
    if ends_at <= starts_at:
        raise IncidentRefused(422, "invalid_window", "the end must be after the start")
    if ends_at <= now:
        raise IncidentRefused(422, "invalid_window", "the window must end in the future")
    if not title.strip():
        raise IncidentRefused(422, "invalid_title", "a title is required")
    mt = Maintenance(
        title=title.strip()[:200],
        body=body.strip(),
        components=chosen,
        starts_at=starts_at,
        ends_at=ends_at,
        status="scheduled",
        created_at=now,
        updated_at=now,
    )
    db.session.add(mt)
    db.session.flush()
    incidents.audit(
        "scheduled",
        actor,
        f"{isoformat(starts_at)} - {isoformat(ends_at)} on {', '.join(chosen)}: {mt.title}",
        maintenance=mt,
    )
    enqueue_payload(KIND, f"silence:create:{mt.id}", {"maintenance_id": mt.id, "action": "create"})
    _tell(mt, SCHEDULED, now)
    if starts_at <= now:  # planned to start at once
        advance(now)
    return mt


def finish(mt: Maintenance, actor: Actor) -> None:
    """End a window early (in progress) or call it off (not started): silence removed."""
    now = utcnow()
    state = effective_status(mt, now)
    if state in ("completed", "cancelled"):
        raise IncidentRefused(409, "finished", f"the maintenance is already {state}")
    if state == "scheduled":
        mt.status = "cancelled"
        incidents.audit("cancelled", actor, None, maintenance=mt)
    else:
        mt.status = "completed"
        incidents.audit("finished_early", actor, None, maintenance=mt)
    mt.finished_at = now
    mt.updated_at = now
    enqueue_payload(KIND, f"silence:expire:{mt.id}", {"maintenance_id": mt.id, "action": "expire"})
    _tell(mt, COMPLETED, now)


def cancel(mt: Maintenance, actor: Actor) -> None:
    finish(mt, actor)


def advance(now: datetime | None = None) -> int:
    """Move windows on by the clock (scheduled -> in_progress -> completed) and tell
    partners; each transition wins in exactly one process (UPDATE ... WHERE status)."""
    now = now or utcnow()
    moved = 0
    for before, after, condition, event in (
        ("scheduled", "in_progress", Maintenance.starts_at <= now, STARTED),
        ("in_progress", "completed", Maintenance.ends_at <= now, COMPLETED),
        ("scheduled", "completed", Maintenance.ends_at <= now, COMPLETED),
    ):
        ids = list(
            db.session.execute(
                update(Maintenance)
                .where(Maintenance.status == before, condition)
                .values(status=after, updated_at=now)
                .returning(Maintenance.id),
                execution_options={"synchronize_session": False},
            ).scalars()
        )
        for maintenance_id in ids:
            mt = db.session.get(Maintenance, maintenance_id, populate_existing=True)
            assert mt is not None
            if after == "completed":
                mt.finished_at = mt.ends_at
            incidents.audit(after, incidents.SYSTEM, None, maintenance=mt)
            _tell(mt, event, now)
            moved += 1
    return moved


def maintenance_data(mt: Maintenance, now: datetime) -> dict[str, Any]:
    return {
        "maintenance": {
            "id": mt.id,
            "name": mt.title,
            "body": mt.body,
            "status": effective_status(mt, now),
            "components": list(mt.components),
            "scheduled_for": isoformat(mt.starts_at),
            "scheduled_until": isoformat(mt.ends_at),
        }
    }


def _tell(mt: Maintenance, event_type: str, now: datetime) -> None:
    from ticketing.status import notify

    data = maintenance_data(mt, now)
    item = data["maintenance"]
    body = (
        f"{mt.title}\n\n{item['scheduled_for']} - {item['scheduled_until']} "
        f"({item['status'].replace('_', ' ')})\n\n{mt.body}"
    ).rstrip()
    notify.email(event_type, list(mt.components), item, body)
    notify.event(event_type, data)


# ------------------------------------------------------------------ the silences


def deliver(max_batches: int | None = None) -> DeliveryReport:
    """One pass: move windows on, then create or remove the due silences."""
    report = DeliveryReport()
    try:
        # A plain read first: most passes have nothing to move (no write lock taken).
        due = db.session.execute(
            db.select(Maintenance.id)
            .where(
                (Maintenance.status == "scheduled") & (Maintenance.starts_at <= utcnow())
                | (Maintenance.status == "in_progress") & (Maintenance.ends_at <= utcnow())
            )
            .limit(1)
        ).first()
        if due is not None and advance():
            db.session.commit()
            from ticketing.status import page

            page.invalidate()
        else:
            db.session.rollback()
    except Exception:  # a lost race on SQLite's lock: the next pass does it
        db.session.rollback()
        log.exception("status: moving maintenance windows on failed")
    outbox = current_app.extensions["outbox"].settings
    batches = 0
    while max_batches is None or batches < max_batches:
        batch = claim_due(10, outbox.claim_timeout, kinds={KIND})
        if not batch:
            break
        batches += 1
        for claimed in batch:
            try:
                _apply(claimed.payload, outbox)
            except SilenceError as exc:
                db.session.rollback()
                mark_failed([claimed], str(exc), outbox.backoff)
                notifications_failed.labels(kind=KIND).inc()
                report.failed += 1
                report.errors.append(str(exc))
                log.warning("status: silence not updated, retrying later: %s", exc)
                continue
            mark_delivered([claimed.id])
            notifications_delivered.labels(kind=KIND).inc()
            report.delivered += 1
        if len(batch) < 10:
            break
    return report


class SilenceError(RuntimeError):
    pass


def _apply(payload: dict[str, Any], outbox: Any) -> None:
    mt = db.session.get(Maintenance, int(payload["maintenance_id"]), populate_existing=True)
    if mt is None:
        return
    if payload["action"] == "create":
        if mt.status in ("completed", "cancelled") or mt.silence_id:
            db.session.rollback()
            return
        silence_id = create_silence(outbox, mt)
        mt.silence_id = silence_id
        incidents.audit(
            "silenced", incidents.SYSTEM, f"Alertmanager silence {silence_id}", maintenance=mt
        )
        db.session.commit()
        db.session.refresh(mt)
        if mt.status not in ("completed", "cancelled"):
            return
        # Finished while the silence was being made: remove it now.
    if mt.silence_id:
        expire_silence(outbox, mt.silence_id)
        incidents.audit(
            "unsilenced", incidents.SYSTEM, f"Alertmanager silence {mt.silence_id}", maintenance=mt
        )
        mt.silence_id = None
        db.session.commit()
    else:
        db.session.rollback()


def _matchers(components: list[str]) -> list[dict[str, Any]]:
    import re

    value = "|".join(re.escape(c) for c in components)
    return [{"name": "component", "value": value, "isRegex": True, "isEqual": True}]


def create_silence(outbox: Any, mt: Maintenance) -> str:
    body = {
        "matchers": _matchers(list(mt.components)),
        "startsAt": isoformat(mt.starts_at),
        "endsAt": isoformat(mt.ends_at),
        "createdBy": CREATED_BY,
        "comment": f"Scheduled maintenance #{mt.id}: {mt.title}",
    }
    errors = []
    for base in outbox.alertmanager_urls:  # an HA pair shares silences by gossip
        try:
            response = _http.post(
                f"{base}/api/v2/silences", json=body, timeout=outbox.request_timeout
            )
        except requests.RequestException as exc:
            errors.append(f"{base}: {type(exc).__name__}: {exc}")
            continue
        if response.status_code == 200:
            return str(response.json()["silenceID"])
        errors.append(f"{base}: HTTP {response.status_code} {response.text.strip()[:300]}")
    raise SilenceError("; ".join(errors))


def expire_silence(outbox: Any, silence_id: str) -> None:
    errors = []
    for base in outbox.alertmanager_urls:
        try:
            response = _http.delete(
                f"{base}/api/v2/silence/{silence_id}", timeout=outbox.request_timeout
            )
        except requests.RequestException as exc:
            errors.append(f"{base}: {type(exc).__name__}: {exc}")
            continue
        # 404: already gone (expired, or removed by hand); 500 on an expired one in
        # some versions says the same ("silence ... already expired").
        if response.status_code in (200, 404) or "already expired" in response.text:
            return
        errors.append(f"{base}: HTTP {response.status_code} {response.text.strip()[:300]}")
    raise SilenceError("; ".join(errors))
