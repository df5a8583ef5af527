"""Tickets about an incident: linked, answered and resolved together.

- **Linking.** A ticket filed while published incidents are open is scored
  against them (:mod:`.linking`): a strong match is linked at once, with the
  score's reasons in its audit trail; a weak one is kept as a suggestion for
  staff (``status_incident_suggestions``). Staff link and unlink by hand.
- **The SLA pauses** while a linked ticket's incident is open
  (:func:`ticketing.desk.sla.pause`), and resumes where it stopped when the
  incident is resolved or the ticket unlinked.
- **One answer to all.** :func:`reply_to_linked` posts an incident update as a
  public staff reply on every linked ticket that is not closed, through
  :func:`ticketing.desk.tickets.post_message` (audit trail, partner webhook,
  first response). ``status_incident_replies`` keeps which update went to
  which ticket, so pressing twice, or two staff at once, sends each reply once.
- **Resolved together.** Resolving the incident (:func:`incident_resolved`)
  resumes every linked ticket's clock and, when the incident's
  ``resolve_tickets`` is on, posts its closing message on each open linked
  ticket and resolves it; each partner may reopen its own.

Like :mod:`.incidents`: no routes, the caller's transaction, the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, current_app

from ticketing.auth import Actor
from ticketing.db import db, upsert_insert
from ticketing.desk import sla, tickets
from ticketing.desk.choices import ACTIVE_STATUSES
from ticketing.desk.metrics import after_commit
from ticketing.errors import ApiError
from ticketing.models import Staff, Ticket, utcnow
from ticketing.status import linking, metrics
from ticketing.status.models import Incident, IncidentReply, IncidentSuggestion, IncidentUpdate
from ticketing.status.settings import StatusSettings

if TYPE_CHECKING:
    from sqlalchemy import Table

#: Status words partners read at the head of an incident reply.
STATUS_WORDS = {
    "investigating": "Investigating",
    "identified": "Identified",
    "monitoring": "Monitoring",
    "resolved": "Resolved",
}


def _settings() -> StatusSettings | None:
    state = current_app.extensions.get("status")
    return state.settings if state is not None else None


def staff_actor(staff_id: int) -> Actor:
    """The ticket rules' actor for a staff member (incidents name staff by id)."""
    staff = db.session.get(Staff, staff_id)
    if staff is None:
        raise ApiError(404, "not_found", "no such staff member")
    return Actor("staff", staff.id, staff.name, staff.role)


# ------------------------------------------------------------------ linking


def open_incidents(settings: StatusSettings) -> list[linking.OpenIncident]:
    """The open published incidents, as the scorer sees them."""
    rows = db.session.execute(
        db.select(Incident.id, Incident.title, Incident.components).where(
            Incident.published_at.is_not(None), Incident.resolved_at.is_(None)
        )
    ).all()
    found = []
    for incident_id, title, components in rows:
        known = [c for c in (settings.component(cid) for cid in components) if c is not None]
        found.append(linking.OpenIncident(incident_id, title, known))
    return found


def firing_partner_alerts(partner_id: int) -> set[str]:
    from ticketing.webhooks.models import PartnerAlert

    return set(
        db.session.execute(
            db.select(PartnerAlert.alertname).where(
                PartnerAlert.partner_id == partner_id, PartnerAlert.status == "firing"
            )
        ).scalars()
    )


def match_ticket(settings: StatusSettings, ticket: Ticket) -> linking.Match | None:
    """The ticket's best match among the open published incidents (None: there are none)."""
    candidates = open_incidents(settings)
    if not candidates:
        return None
    wants_alerts = any(c.partner_alerts for i in candidates for c in i.components)
    alerts = firing_partner_alerts(ticket.partner_id) if wants_alerts else set()
    return _score(ticket, candidates, alerts)


def _score(
    ticket: Ticket, candidates: list[linking.OpenIncident], alerts: set[str]
) -> linking.Match | None:
    text = linking.Text.of(ticket.title, ticket.description)
    return linking.best_match(text, ticket.title, ticket.category, candidates, alerts)


def _link_or_suggest(
    settings: StatusSettings, ticket: Ticket, match: linking.Match | None, why: str
) -> bool:
    """Act on ``match`` as ``status.linking`` says: link (True), suggest, or nothing."""
    decision = linking.decide(match, settings.linking)
    if match is None or decision == "none":
        return False
    incident = db.session.get(Incident, match.incident_id)
    assert incident is not None
    if decision == "link":
        return link(ticket, incident, None, f"{why}: {match.reason}")
    suggest(ticket, incident, match)
    return False


def on_ticket_created(app: Any, ticket: Ticket | None = None, **_: Any) -> None:
    """``ticket_created`` receiver: link the new ticket, or suggest it, or nothing."""
    if not isinstance(app, Flask) or ticket is None:
        return
    settings = _settings()
    if settings is None or not settings.linking.enabled:
        return
    _link_or_suggest(settings, ticket, match_ticket(settings, ticket), "matches the open incident")


#: Tickets filed this long before an incident was opened are scored against it when it is
#: published: the first partners report an outage before staff have published it.
LOOKBACK = timedelta(hours=1)
#: At most this many of them (the newest first is not needed: every one is scored once).
LOOKBACK_TICKETS = 1000


def incident_published(incident: Incident) -> int:
    """Score the open, unlinked tickets filed since ``LOOKBACK`` before the incident was
    opened against it, now that it is published: link or suggest each as if it had been
    filed now. Returns how many were linked."""
    settings = _settings()
    if settings is None or not settings.linking.enabled or incident.resolved_at is not None:
        return 0
    known = [c for c in (settings.component(cid) for cid in incident.components) if c]
    target = [linking.OpenIncident(incident.id, incident.title, known)]
    since = incident.created_at - LOOKBACK
    candidates = (
        db.session.execute(
            db.select(Ticket)
            .where(
                Ticket.incident_id.is_(None),
                Ticket.status.in_(("open", "in_progress")),
                Ticket.created_at >= since,
            )
            .order_by(Ticket.id)
            .limit(LOOKBACK_TICKETS)
        )
        .scalars()
        .all()
    )
    alerts = (
        _firing_alerts({t.partner_id for t in candidates})
        if any(c.partner_alerts for c in known)
        else {}
    )
    linked = 0
    for ticket in candidates:
        match = _score(ticket, target, alerts.get(ticket.partner_id, set()))
        why = "filed before the incident was published, matches it"
        linked += _link_or_suggest(settings, ticket, match, why)
    return linked


def _firing_alerts(partner_ids: set[int]) -> dict[int, set[str]]:
    from ticketing.webhooks.models import PartnerAlert

    found: dict[int, set[str]] = {}
    if not partner_ids:
        return found
    rows = db.session.execute(
        db.select(PartnerAlert.partner_id, PartnerAlert.alertname).where(
            PartnerAlert.partner_id.in_(partner_ids), PartnerAlert.status == "firing"
        )
    )
    for partner_id, alertname in rows:
        found.setdefault(partner_id, set()).add(alertname)
    return found


def suggest(ticket: Ticket, incident: Incident, match: linking.Match) -> None:
    db.session.add(
        IncidentSuggestion(
            ticket_id=ticket.id,
            incident_id=incident.id,
            score=match.score,
            reason=match.reason,
            created_at=utcnow(),
        )
    )
    tickets.audit(
        ticket,
        None,
        "incident_suggested",
        None,
        incident.id,
        f"may be about incident #{incident.id}: {match.reason}"[:400],
    )
    counter = metrics.tickets_suggested
    after_commit(counter.inc)


def link(ticket: Ticket, incident: Incident, actor: Actor | None, reason: str) -> bool:
    """Link ``ticket`` to ``incident`` (``actor`` None: automatically); its clock pauses
    while the incident is open. False when it was linked to it already."""
    if ticket.incident_id == incident.id:
        return False
    now = utcnow()
    before = ticket.incident_id
    ticket.incident_id = incident.id
    tickets.audit(ticket, actor, "incident_id", before, incident.id, reason[:400], at=now)
    if incident.resolved_at is None:
        if sla.pause(ticket, now):
            tickets.audit(
                ticket,
                actor,
                "sla_paused_at",
                None,
                now.isoformat() + "Z",
                f"incident #{incident.id} is open",
                at=now,
            )
    else:
        _resume(ticket, actor, f"incident #{incident.id} is resolved")
    db.session.execute(
        db.delete(IncidentSuggestion).where(IncidentSuggestion.ticket_id == ticket.id)
    )
    ticket.updated_at = now
    how = "automatic" if actor is None else "staff"
    counter = metrics.tickets_linked.labels(how=how)
    after_commit(counter.inc)
    return True


def unlink(ticket: Ticket, actor: Actor) -> bool:
    """Unlink ``ticket`` from its incident; its clock runs again. False when not linked."""
    if ticket.incident_id is None:
        return False
    before = ticket.incident_id
    ticket.incident_id = None
    tickets.audit(ticket, actor, "incident_id", before, None, "unlinked by staff")
    _resume(ticket, actor, "unlinked from its incident")
    ticket.updated_at = utcnow()
    return True


def dismiss(ticket: Ticket, incident_id: int, actor: Actor) -> bool:
    """Staff say a suggested ticket is not about the incident. False when not suggested."""
    deleted = db.session.execute(
        db.delete(IncidentSuggestion).where(
            IncidentSuggestion.ticket_id == ticket.id,
            IncidentSuggestion.incident_id == incident_id,
        )
    )
    if not cast(Any, deleted).rowcount:
        return False
    tickets.audit(ticket, actor, "incident_suggested", incident_id, None, "dismissed by staff")
    return True


def _resume(ticket: Ticket, actor: Actor | None, why: str) -> None:
    settings = current_app.extensions["ticketing"]
    now = utcnow()
    was_paused = ticket.sla_paused_at is not None
    seconds = sla.resume(settings.sla, ticket, now)
    if was_paused:
        tickets.audit(
            ticket,
            actor,
            "sla_paused_at",
            None,
            None,
            f"{why}: the SLA clock runs again after {seconds} s",
            at=now,
        )
        counter = metrics.sla_paused_seconds
        if seconds:
            after_commit(lambda: counter.inc(seconds))


def linked_incident(incident_id: int) -> dict[str, Any] | None:
    """What a partner sees of its ticket's incident: the public status, once published."""
    from ticketing.status.notify import page_url

    incident = db.session.get(Incident, incident_id)
    if incident is None or incident.published_at is None:
        return None
    base = page_url()
    return {
        "id": incident.id,
        "name": incident.title,
        "status": incident.status,
        "impact": incident.impact,
        "shortlink": f"{base}#incident-{incident.id}" if base else None,
    }


def linked_tickets(incident_id: int) -> Sequence[Ticket]:
    return (
        db.session.execute(
            db.select(Ticket).where(Ticket.incident_id == incident_id).order_by(Ticket.id)
        )
        .scalars()
        .all()
    )


def suggested_tickets(incident_id: int) -> list[tuple[Ticket, IncidentSuggestion]]:
    rows = db.session.execute(
        db.select(Ticket, IncidentSuggestion)
        .join(IncidentSuggestion, IncidentSuggestion.ticket_id == Ticket.id)
        .where(IncidentSuggestion.incident_id == incident_id, Ticket.incident_id.is_(None))
        .order_by(IncidentSuggestion.score.desc(), Ticket.id)
    ).all()
    return [(ticket, suggestion) for ticket, suggestion in rows]


def linked_counts(incident_ids: Iterable[int]) -> dict[int, int]:
    ids = list(incident_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        db.select(Ticket.incident_id, db.func.count())
        .where(Ticket.incident_id.in_(ids))
        .group_by(Ticket.incident_id)
    ).all()
    return {incident_id: count for incident_id, count in rows}


# ------------------------------------------------------------------ answers


@dataclass(frozen=True)
class BulkReply:
    """What one "reply to all linked tickets" did."""

    sent: int
    #: Tickets that had this update already (pressed twice, or by someone else).
    already: int
    #: Closed tickets (a partner closed it): not reopened by an incident update.
    closed: int


def reply_text(incident: Incident, update: IncidentUpdate) -> str:
    return f"{STATUS_WORDS.get(update.status, update.status)}: {incident.title}\n\n{update.body}"


def _claim(update_id: int, ticket_id: int) -> bool:
    """Record that ``update_id`` goes to ``ticket_id``; False when it went already.

    ``INSERT ... ON CONFLICT DO NOTHING`` on the pair's primary key: a second
    transaction doing the same waits for the first and then finds the row.
    """
    table = cast("Table", IncidentReply.__table__)
    inserted = db.session.execute(
        upsert_insert(table)
        .values(update_id=update_id, ticket_id=ticket_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["update_id", "ticket_id"])
        .returning(table.c.ticket_id)
    ).first()
    return inserted is not None


def _reply(update: IncidentUpdate, ticket: Ticket, body: str, actor: Actor) -> bool:
    if not _claim(update.id, ticket.id):
        return False
    message = tickets.post_message(ticket, actor, body)
    db.session.execute(
        db.update(IncidentReply)
        .where(IncidentReply.update_id == update.id, IncidentReply.ticket_id == ticket.id)
        .values(message_id=message.id)
    )
    return True


def latest_update(incident: Incident) -> IncidentUpdate:
    update: IncidentUpdate | None = db.session.execute(
        db.select(IncidentUpdate)
        .where(IncidentUpdate.incident_id == incident.id)
        .order_by(IncidentUpdate.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if update is None:
        raise ApiError(409, "no_update", "the incident has no update to send")
    return update


def reply_to_linked(
    incident: Incident, update: IncidentUpdate | None, actor: Actor, kind: str = "update"
) -> BulkReply:
    """Post ``update`` (default: the latest) as a public reply on every linked ticket."""
    if update is None:
        update = latest_update(incident)
    if update.incident_id != incident.id:
        raise ApiError(404, "not_found", "no such update of this incident")
    if incident.published_at is None:
        raise ApiError(
            409, "not_published", "publish the incident before telling partners about it"
        )
    body = reply_text(incident, update)
    sent = already = closed = 0
    for ticket in linked_tickets(incident.id):
        if ticket.status == "closed":
            closed += 1
        elif _reply(update, ticket, body, actor):
            sent += 1
        else:
            already += 1
    if sent:
        counter = metrics.bulk_replies.labels(kind=kind)
        after_commit(lambda: counter.inc(sent))
    return BulkReply(sent, already, closed)


def incident_resolved(
    incident: Incident, update: IncidentUpdate, actor: tuple[str, int | None]
) -> int:
    """The incident was resolved by ``update``: every linked ticket's clock runs again
    and, with ``resolve_tickets``, each open linked ticket gets the closing message
    and is resolved. The number of tickets resolved."""
    linked = linked_tickets(incident.id)
    histogram = metrics.linked_per_incident
    count = len(linked)
    after_commit(lambda: histogram.observe(count))
    staff = staff_actor(actor[1]) if actor[0] == "staff" and actor[1] is not None else None
    for ticket in linked:
        _resume(ticket, staff, f"incident #{incident.id} is resolved")
    if not incident.resolve_tickets or staff is None or incident.published_at is None:
        return 0
    body = reply_text(incident, update)
    if incident.closing_message:
        body = f"{body}\n\n{incident.closing_message}"
    resolved = replied = 0
    for ticket in linked:
        if ticket.status not in ACTIVE_STATUSES:
            continue
        replied += _reply(update, ticket, body, staff)
        tickets.change_status(ticket, "resolved", staff)
        resolved += 1
    if replied:
        counter = metrics.bulk_replies.labels(kind="closing")
        after_commit(lambda: counter.inc(replied))
    return resolved
