"""Incident rules: opening, publishing, updating and resolving, and the components' states.

No routes here (the receiver, the console and the page call these), like
``ticketing/desk/``. Every function works in the caller's transaction and
records its step in ``status_audit``; the caller commits.

    incident = incidents.open_incident(settings, "API errors", ["api"], "major",
                                       "We are looking into it.", actor=("staff", 3))
    incidents.publish(incident, actor=("staff", 3))       # partners see it now
    incidents.post_update(incident, "identified", "A bad deploy.", actor=("staff", 3))
    incidents.post_update(incident, "resolved", "Rolled back.", actor=("staff", 3))

Nothing reaches partners while an incident is a draft: the page, the JSON API,
the feed and the partner webhooks (``incident.created`` when it is published,
``incident.updated`` for each later update, ``incident.resolved``) read only
published incidents.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.models import utcnow
from ticketing.status import metrics
from ticketing.status.models import (
    INCIDENT_STATUSES,
    Incident,
    IncidentUpdate,
    Maintenance,
    StatusAlert,
    StatusAudit,
)
from ticketing.status.settings import IMPACTS, STATES, StatusSettings

#: (actor_kind, actor_id): ("staff", 3), ("system", None), ("alertmanager", None).
Actor = tuple[str, int | None]
SYSTEM: Actor = ("system", None)

#: An incident's impact -> the state of the components it affects.
IMPACT_STATES = {
    "none": "operational",
    "minor": "degraded_performance",
    "major": "partial_outage",
    "critical": "major_outage",
}
#: A firing alert's severity -> the impact of the incident it opens.
SEVERITY_IMPACTS = {"critical": "critical", "warning": "minor", "info": "none"}


class IncidentRefused(ApiError):
    """A change the incident's state does not allow (409) or invalid input (422)."""


def audit(
    action: str,
    actor: Actor,
    detail: str | None = None,
    incident: Incident | None = None,
    maintenance: Maintenance | None = None,
) -> None:
    if incident is not None and incident.id is None:
        db.session.flush()
    if maintenance is not None and maintenance.id is None:
        db.session.flush()
    db.session.add(
        StatusAudit(
            incident_id=incident.id if incident is not None else None,
            maintenance_id=maintenance.id if maintenance is not None else None,
            actor_kind=actor[0],
            actor_id=actor[1],
            action=action,
            detail=detail,
            at=utcnow(),
        )
    )


def _check(settings: StatusSettings, components: Iterable[str], impact: str) -> list[str]:
    chosen = list(dict.fromkeys(components))
    unknown = [c for c in chosen if settings.component(c) is None]
    if not chosen or unknown:
        raise IncidentRefused(
            422,
            "invalid_components",
            "choose one or more of the configured components",
            details={"unknown": unknown, "known": [c.id for c in settings.components]},
        )
    if impact not in IMPACTS:
        raise IncidentRefused(422, "invalid_impact", f"impact must be one of {', '.join(IMPACTS)}")
    return chosen


def open_incident(
    settings: StatusSettings,
    title: str,
    components: Iterable[str],
    impact: str,
    body: str,
    actor: Actor,
    source: str = "staff",
) -> Incident:
    """A new draft incident (status investigating) with its first update."""
    chosen = _check(settings, components, impact)
    now = utcnow()
    incident = Incident(
        title=title.strip()[:200],
        status="investigating",
        impact=impact,
        components=chosen,
        source=source,
        created_at=now,
        updated_at=now,
    )
    db.session.add(incident)
    db.session.flush()
    db.session.add(
        IncidentUpdate(
            incident_id=incident.id,
            status="investigating",
            body=body,
            staff_id=actor[1] if actor[0] == "staff" else None,
            created_at=now,
        )
    )
    audit("opened", actor, f"{impact} on {', '.join(chosen)}: {incident.title}", incident)
    metrics.incidents_opened.labels(source=source).inc()
    return incident


def publish(incident: Incident, actor: Actor) -> None:
    """Make a draft public; partners hear ``incident.created`` (409 if already public)."""
    from ticketing.status import notify

    if incident.published_at is not None:
        raise IncidentRefused(409, "already_published", "the incident is already published")
    now = utcnow()
    incident.published_at = now
    incident.updated_at = now
    audit("published", actor, None, incident)
    metrics.incidents_published.inc()
    from ticketing.status import incident_tickets

    # The first partners to notice an outage file before staff publish it.
    incident_tickets.incident_published(incident)
    notify.incident_event(
        incident, "incident.resolved" if incident.resolved_at else "incident.created"
    )


def post_update(incident: Incident, status: str, body: str, actor: Actor) -> IncidentUpdate:
    """A new update (status investigating, identified, monitoring or resolved)."""
    from ticketing.status import notify

    if status not in INCIDENT_STATUSES:
        raise IncidentRefused(
            422, "invalid_status", f"status must be one of {', '.join(INCIDENT_STATUSES)}"
        )
    if incident.resolved_at is not None:
        raise IncidentRefused(409, "resolved", "the incident is resolved; open a new one")
    if not body.strip():
        raise IncidentRefused(422, "empty_update", "say what changed")
    now = utcnow()
    update = IncidentUpdate(
        incident_id=incident.id,
        status=status,
        body=body.strip(),
        staff_id=actor[1] if actor[0] == "staff" else None,
        created_at=now,
    )
    db.session.add(update)
    before = incident.status
    incident.status = status
    incident.updated_at = now
    if status == "resolved":
        incident.resolved_at = now
        metrics.incidents_resolved.inc()
    audit("update", actor, f"{before} -> {status}: {body.strip()[:300]}", incident)
    if status == "resolved":
        from ticketing.status import incident_tickets

        db.session.flush()
        incident_tickets.incident_resolved(incident, update, actor)
    if incident.published_at is not None:
        db.session.flush()
        notify.incident_event(
            incident, "incident.resolved" if status == "resolved" else "incident.updated"
        )
    return update


def resolve(incident: Incident, body: str, actor: Actor) -> IncidentUpdate:
    return post_update(incident, "resolved", body or "This incident has been resolved.", actor)


def get_incident(incident_id: int) -> Incident:
    incident = db.session.get(Incident, incident_id)
    if incident is None:
        raise ApiError(404, "not_found", "no such incident")
    return incident


def updates_of(incident_ids: Iterable[int]) -> dict[int, list[IncidentUpdate]]:
    ids = list(incident_ids)
    found: dict[int, list[IncidentUpdate]] = {i: [] for i in ids}
    if ids:
        for update in db.session.execute(
            db.select(IncidentUpdate)
            .where(IncidentUpdate.incident_id.in_(ids))
            .order_by(IncidentUpdate.id.desc())
        ).scalars():
            found[update.incident_id].append(update)
    return found


def audit_of(incident: Incident) -> list[StatusAudit]:
    return list(
        db.session.execute(
            db.select(StatusAudit)
            .where(StatusAudit.incident_id == incident.id)
            .order_by(StatusAudit.id)
        ).scalars()
    )


def open_published() -> list[Incident]:
    return list(
        db.session.execute(
            db.select(Incident)
            .where(Incident.published_at.is_not(None), Incident.resolved_at.is_(None))
            .order_by(Incident.id.desc())
        ).scalars()
    )


# ------------------------------------------------------------------ component states


def _worse(a: str, b: str) -> str:
    return a if STATES.index(a) >= STATES.index(b) else b


@dataclass(frozen=True)
class ComponentState:
    id: str
    name: str
    description: str
    position: int
    status: str


def component_states(settings: StatusSettings, now: datetime | None = None) -> list[ComponentState]:
    """Each component's state: the worst of its open published incidents' impact, the
    alerts of those incidents still firing (by severity), and maintenance in progress.

    A draft incident's alerts do not show: nothing reaches partners until staff publish.
    """
    now = now or utcnow()
    states = {c.id: "operational" for c in settings.components}
    published = open_published()
    public_ids = {i.id for i in published}
    for incident in published:
        for component in incident.components:
            if component in states:
                states[component] = _worse(states[component], IMPACT_STATES[incident.impact])
    if public_ids:
        for alert in db.session.execute(
            db.select(StatusAlert).where(
                StatusAlert.status == "firing", StatusAlert.incident_id.in_(public_ids)
            )
        ).scalars():
            state = settings.severity_states.get(alert.severity or "")
            if state and alert.component in states:
                states[alert.component] = _worse(states[alert.component], state)
    from ticketing.status.maintenance import effective_status

    for maintenance in db.session.execute(
        db.select(Maintenance).where(Maintenance.status.in_(("scheduled", "in_progress")))
    ).scalars():
        if effective_status(maintenance, now) != "in_progress":
            continue
        for component in maintenance.components:
            if component in states:
                states[component] = _worse(states[component], "under_maintenance")
    return [
        ComponentState(c.id, c.name, c.description, position, states[c.id])
        for position, c in enumerate(settings.components, start=1)
    ]


#: The page's overall state from the worst component state (Statuspage's indicator).
OVERALL = {
    "operational": ("none", "All Systems Operational"),
    "under_maintenance": ("maintenance", "Service Under Maintenance"),
    "degraded_performance": ("minor", "Minor Service Outage"),
    "partial_outage": ("major", "Partial System Outage"),
    "major_outage": ("critical", "Major System Outage"),
}


def overall(states: Iterable[ComponentState]) -> tuple[str, str]:
    """``(indicator, description)``: none/maintenance/minor/major/critical."""
    worst = "operational"
    for state in states:
        worst = _worse(worst, state.status)
    return OVERALL[worst]
