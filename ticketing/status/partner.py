"""The per-partner view: the public status plus what concerns one partner alone.

- ``GET /api/v1/status`` (the partner's API key): ``summary.json``'s body plus
  ``partner``: its own partner alerts firing now, as its webhooks describe them
  (``alert``, ``severity``, ``summary``, ``description``, ``starts_at``; read
  from Alertmanager, ``scope="partner"`` and its ``partner`` label), and its
  open tickets (``id``, ``title``, ``status``, ``priority``, ``updated_at``);
- ``POST /api/v1/status/link``: a private link (page and Atom feed) that shows
  the same without a key; a new one replaces the old (rotation), shown once;
  ``DELETE /api/v1/status/link`` revokes it. Only its SHA-256 is stored;
- ``GET /status/p/<token>``, ``/status/p/<token>/live``, ``/status/p/<token>/feed.atom``.

Every query names the partner (its key's, or its link's): another partner's
alerts or tickets are never read. An unknown or rotated link is a 404.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import requests
from flask import Response, current_app, render_template, url_for

from ticketing.api.base import Blueprint
from ticketing.auth import require_partner
from ticketing.db import db
from ticketing.desk.choices import ACTIVE_STATUSES
from ticketing.errors import ApiError
from ticketing.models import Partner, Ticket, utcnow
from ticketing.outbox.store import isoformat
from ticketing.status import page
from ticketing.status.models import PartnerLink

api = Blueprint(
    "status_partner",
    __name__,
    url_prefix="/api/v1/status",
    description="The status page as one partner sees it: public status, its own alerts "
    "and open tickets; its private link",
)
_http = requests.Session()


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def partner_alerts(partner_id: int) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The partner's own alerts firing now (Alertmanager), as its webhooks describe them."""
    urls = current_app.extensions["outbox"].settings.alertmanager_urls
    params = [
        ("active", "true"),
        ("silenced", "false"),
        ("inhibited", "false"),
        ("filter", 'scope="partner"'),
        ("filter", f'partner="{partner_id}"'),
    ]
    errors = []
    for base in urls:
        try:
            response = _http.get(f"{base}/api/v2/alerts", params=params, timeout=2)
            response.raise_for_status()
            raw = response.json()
        except (requests.RequestException, ValueError) as exc:
            errors.append(type(exc).__name__)
            continue
        alerts = []
        for alert in raw if isinstance(raw, list) else []:
            labels = alert.get("labels") or {}
            if labels.get("partner") != str(partner_id):  # never another partner's
                continue
            annotations = alert.get("annotations") or {}
            alerts.append(
                {
                    "alert": labels.get("alertname"),
                    "status": "firing",
                    "severity": labels.get("severity"),
                    "summary": annotations.get("summary"),
                    "description": annotations.get("description"),
                    "starts_at": alert.get("startsAt"),
                }
            )
        return sorted(alerts, key=lambda a: str(a["starts_at"])), None
    return None, "Alertmanager could not be reached: " + ", ".join(errors)


def open_tickets(partner_id: int) -> list[dict[str, Any]]:
    rows = db.session.execute(
        db.select(Ticket)
        .where(Ticket.partner_id == partner_id, Ticket.status.in_(ACTIVE_STATUSES))
        .order_by(Ticket.id.desc())
        .limit(100)
    ).scalars()
    return [
        {
            "id": t.id,
            "title": t.title,
            "status": t.status,
            "priority": t.priority,
            "updated_at": isoformat(t.updated_at),
        }
        for t in rows
    ]


def partner_view(partner_id: int) -> dict[str, Any]:
    alerts, error = partner_alerts(partner_id)
    view: dict[str, Any] = {
        "id": partner_id,
        "alerts": alerts,
        "tickets": open_tickets(partner_id),
    }
    if error:
        view["alerts_error"] = error
    return view


@api.route("", methods=["GET"])
@api.response(200)
def status_for_partner() -> dict[str, Any]:
    """The status summary, with the calling partner's own alerts and open tickets"""
    actor = require_partner()
    body = page.summary(page.model())
    body["partner"] = partner_view(actor.id)
    return body


@api.route("/link", methods=["POST"])
@api.response(201)
def rotate_link() -> tuple[dict[str, Any], int]:
    """Make a new private link (page and Atom feed) that replaces the old one; shown once"""
    actor = require_partner()
    token = secrets.token_urlsafe(32)
    link = db.session.get(PartnerLink, actor.id)
    if link is None:
        db.session.add(PartnerLink(partner_id=actor.id, token_hash=_hash(token)))
    else:
        link.token_hash = _hash(token)
        link.created_at = utcnow()
    db.session.commit()
    return {
        "url": url_for("status_page.partner_page", token=token, _external=True),
        "feed": url_for("status_page.partner_feed", token=token, _external=True),
    }, 201


@api.route("/link", methods=["DELETE"])
@api.response(204)
def revoke_link() -> None:
    """Revoke the private link"""
    actor = require_partner()
    db.session.execute(db.delete(PartnerLink).where(PartnerLink.partner_id == actor.id))
    db.session.commit()


def partner_for(token: str) -> Partner:
    """The partner a private link names; 404 for an unknown or rotated one."""
    if not token or len(token) > 100:
        raise ApiError(404, "not_found", "no such status link")
    partner_id = db.session.execute(
        db.select(PartnerLink.partner_id).where(PartnerLink.token_hash == _hash(token))
    ).scalar_one_or_none()
    partner = db.session.get(Partner, partner_id) if partner_id is not None else None
    if partner is None or partner.status != "active":
        raise ApiError(404, "not_found", "no such status link")
    return partner


@page.bp.get("/status/p/<token>")
def partner_page(token: str) -> Response:
    partner = partner_for(token)
    return page._html(
        render_template(
            "status/page.html",
            **page._context(page.model()),
            partner_view=partner_view(partner.id),
            partner_name=partner.name,
            live_url=url_for("status_page.partner_live", token=token),
            feed_url=url_for("status_page.partner_feed", token=token),
        )
    )


@page.bp.get("/status/p/<token>/live")
def partner_live(token: str) -> Response:
    partner = partner_for(token)
    return page._html(
        render_template(
            "status/_body.html",
            **page._context(page.model()),
            partner_view=partner_view(partner.id),
            partner_name=partner.name,
        )
    )


@page.bp.get("/status/p/<token>/feed.atom")
def partner_feed(token: str) -> Response:
    partner = partner_for(token)
    view = partner_view(partner.id)
    extra = [
        {
            "id": f"ticket-{t['id']}",
            "title": f"Your ticket #{t['id']}: {t['title']} ({t['status'].replace('_', ' ')})",
            "updated": t["updated_at"],
            "published": t["updated_at"],
            "lines": [f"priority {t['priority']}"],
        }
        for t in view["tickets"]
    ] + [
        {
            "id": f"alert-{a['alert']}-{a['starts_at']}",
            "title": f"Your alert: {a['summary'] or a['alert']}",
            "updated": a["starts_at"],
            "published": a["starts_at"],
            "lines": [a["description"] or ""],
        }
        for a in view["alerts"] or []
    ]
    return page.feed_response(extra, title_suffix=f" for {partner.name}")
