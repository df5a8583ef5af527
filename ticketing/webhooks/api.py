"""Partner webhook API (``/api/v1/webhooks``): a partner's own endpoints and their logs.

    POST   /api/v1/webhooks                  register (the signing secret is in this answer only)
    GET    /api/v1/webhooks                  list
    GET    /api/v1/webhooks/{id}             one
    PATCH  /api/v1/webhooks/{id}             change url, events, description; enabled false/true
    DELETE /api/v1/webhooks/{id}             delete (with its log; queued events are dropped)
    POST   /api/v1/webhooks/{id}/ping        queue a test delivery (event ``ping``)
    GET    /api/v1/webhooks/{id}/deliveries  the delivery log, newest first

Every route needs a partner's API key and reaches only that partner's
endpoints; another partner's endpoint is answered 404 like one that does not
exist.  A URL that is not https, or whose host resolves to a loopback,
private, link-local or metadata address, is refused with 422 (docs/webhooks.md).
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from ticketing.api.base import Blueprint, authenticate_requests
from ticketing.api.pagination import paginate
from ticketing.auth import require_partner
from ticketing.db import db
from ticketing.desk import tickets
from ticketing.errors import ApiError, not_found
from ticketing.models import utcnow
from ticketing.webhooks import events, signing
from ticketing.webhooks.guard import UnsafeUrl, check_url
from ticketing.webhooks.models import WebhookDelivery, WebhookEndpoint
from ticketing.webhooks.schemas import (
    DeliveryPageSchema,
    DeliveryQuerySchema,
    EndpointCreatedSchema,
    EndpointCreateSchema,
    EndpointPageSchema,
    EndpointSchema,
    EndpointUpdateSchema,
    PingSchema,
)
from ticketing.webhooks.settings import WebhooksSettings

bp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/api/v1/webhooks",
    description="Partners: webhook endpoints that receive your alerts and ticket "
    "events, signed (docs/webhooks.md)",
)


authenticate_requests(bp, require_partner)


def _settings() -> WebhooksSettings:
    settings: WebhooksSettings = current_app.extensions["webhooks"].settings
    return settings


def _safe_url(url: str) -> str:
    settings = _settings()
    try:
        return check_url(url, settings.allowed_networks, settings.require_https)
    except UnsafeUrl as exc:
        raise ApiError(
            422,
            "unsafe_url",
            f"the URL cannot be used: {exc}",
            details={"fields": {"json": {"url": [str(exc)]}}},
        ) from None


def _own(endpoint_id: int) -> WebhookEndpoint:
    actor = require_partner()
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise not_found("webhook endpoint")
    if endpoint.partner_id != actor.id:
        raise tickets.deny(actor, "webhook_endpoint", endpoint_id, "webhook endpoint")
    return endpoint


@bp.route("", methods=["POST"])
@bp.arguments(EndpointCreateSchema)
@bp.response(201, EndpointCreatedSchema, description="Created; `secret` is shown only here")
@bp.error(409, "The partner has the most endpoints allowed")
@bp.error(422, "Invalid input, or a URL that is not https or not on a public address")
def create_endpoint(data: dict[str, Any]) -> tuple[WebhookEndpoint, int]:
    """Register a webhook endpoint"""
    actor = require_partner()
    settings = _settings()
    count = db.session.execute(
        db.select(db.func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.partner_id == actor.id)
    ).scalar_one()
    if count >= settings.max_endpoints:
        raise ApiError(
            409,
            "too_many_endpoints",
            f"a partner may have at most {settings.max_endpoints} webhook endpoints",
            details={"max_endpoints": settings.max_endpoints},
        )
    now = utcnow()
    endpoint = WebhookEndpoint(
        partner_id=actor.id,
        url=_safe_url(data["url"]),
        description=data.get("description"),
        events=list(dict.fromkeys(data.get("events") or events.EVENT_TYPES)),
        secret=signing.new_secret(),
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    db.session.add(endpoint)
    db.session.commit()
    return endpoint, 201


@bp.route("", methods=["GET"])
@bp.arguments(DeliveryQuerySchema, location="query")
@bp.response(200, EndpointPageSchema)
def list_endpoints(query: dict[str, Any]) -> dict[str, Any]:
    """List your webhook endpoints, oldest first"""
    actor = require_partner()
    api = tickets.settings().api
    limit = min(query.get("limit") or api.default_page_size, api.max_page_size)
    page = paginate(
        db.select(WebhookEndpoint).where(WebhookEndpoint.partner_id == actor.id),
        WebhookEndpoint.id,
        filters={"list": "webhook_endpoints", "partner": actor.id},
        cursor=query.get("cursor"),
        limit=limit,
        newest_first=False,
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@bp.route("/<id:endpoint_id>", methods=["GET"])
@bp.response(200, EndpointSchema)
def get_endpoint(endpoint_id: int) -> WebhookEndpoint:
    """Get one of your webhook endpoints"""
    return _own(endpoint_id)


@bp.route("/<id:endpoint_id>", methods=["PATCH"])
@bp.arguments(EndpointUpdateSchema)
@bp.response(200, EndpointSchema)
@bp.error(422, "Invalid input, or a URL that is not https or not on a public address")
def update_endpoint(data: dict[str, Any], endpoint_id: int) -> WebhookEndpoint:
    """Change, disable or enable one of your webhook endpoints"""
    endpoint = _own(endpoint_id)
    if "url" in data:
        endpoint.url = _safe_url(data["url"])
    if "events" in data:
        endpoint.events = list(dict.fromkeys(data["events"]))
    if "description" in data:
        endpoint.description = data["description"]
    if "enabled" in data:
        endpoint.enabled = data["enabled"]
        if data["enabled"]:
            endpoint.disabled_reason = None
            endpoint.failing_since = None
        else:  # a disabled endpoint receives nothing: what waited for it is dropped
            events.drop_queued_for(endpoint.id, "endpoint disabled")
    endpoint.updated_at = utcnow()
    db.session.commit()
    return endpoint


@bp.route("/<id:endpoint_id>", methods=["DELETE"])
@bp.response(204)
def delete_endpoint(endpoint_id: int) -> None:
    """Delete one of your webhook endpoints and its delivery log"""
    endpoint = _own(endpoint_id)
    # Its queued events go with it (and its ids are never given out again: migration 0007).
    events.drop_queued_for(endpoint.id, "endpoint deleted")
    db.session.execute(db.delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    db.session.delete(endpoint)
    db.session.commit()
    return None


@bp.route("/<id:endpoint_id>/ping", methods=["POST"])
@bp.response(202, PingSchema, description="Queued; see the delivery log for the outcome")
@bp.error(409, "The endpoint is disabled")
def ping_endpoint(endpoint_id: int) -> dict[str, str]:
    """Send a test event (`ping`) to one of your endpoints"""
    endpoint = _own(endpoint_id)
    if not endpoint.enabled:
        raise ApiError(409, "endpoint_disabled", "the endpoint is disabled; enable it first")
    event = events.new_event(endpoint.partner_id, events.PING, {"endpoint_id": endpoint.id})
    events.enqueue_for(endpoint.id, event)
    db.session.commit()
    return {"event_id": event["id"]}


@bp.route("/<id:endpoint_id>/deliveries", methods=["GET"])
@bp.arguments(DeliveryQuerySchema, location="query")
@bp.response(200, DeliveryPageSchema)
def list_deliveries(query: dict[str, Any], endpoint_id: int) -> dict[str, Any]:
    """The delivery log of one of your endpoints, newest first"""
    endpoint = _own(endpoint_id)
    api = tickets.settings().api
    limit = min(query.get("limit") or api.default_page_size, api.max_page_size)
    page = paginate(
        db.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id),
        WebhookDelivery.id,
        filters={"endpoint": endpoint.id},
        cursor=query.get("cursor"),
        limit=limit,
        newest_first=True,
    )
    return {"items": page.items, "next_cursor": page.next_cursor}
