"""Request and response schemas of the partner webhook API and the Alertmanager receiver."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from ticketing.api.fields import QueryInteger, StrictBoolean, Text, UtcDateTime
from ticketing.api.schemas import StrictSchema
from ticketing.webhooks.events import EVENT_TYPES

URL_MAX = 2048
_events = ma.fields.List(
    ma.fields.String(validate=validate.OneOf(EVENT_TYPES)),
    validate=validate.Length(min=1, max=len(EVENT_TYPES)),
    metadata={
        "description": f"event types to receive; default: all ({', '.join(EVENT_TYPES)})",
        "example": ["alert.firing", "alert.resolved"],
    },
)


class EndpointCreateSchema(StrictSchema):
    url = Text(
        required=True,
        max_length=URL_MAX,
        single_line=True,
        metadata={
            "description": "an https:// URL on a public address",
            "example": "https://hooks.acme.example/partnerwatch",
        },
    )
    events = _events
    description = Text(max_length=200, single_line=True, allow_none=True)


class EndpointUpdateSchema(StrictSchema):
    url = Text(max_length=URL_MAX, single_line=True)
    events = _events
    description = Text(max_length=200, single_line=True, allow_none=True)
    enabled = StrictBoolean(
        metadata={
            "description": "false disables the endpoint (nothing is sent to it); true enables it "
            "again, also after it was disabled automatically"
        }
    )


class EndpointSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    url = ma.fields.String(required=True)
    description = ma.fields.String(allow_none=True)
    events = ma.fields.List(ma.fields.String(), required=True)
    enabled = ma.fields.Boolean(required=True)
    disabled_reason = ma.fields.String(
        allow_none=True,
        metadata={"description": "why the endpoint was disabled automatically, if it was"},
    )
    failing_since = UtcDateTime(
        allow_none=True,
        metadata={"description": "first failed delivery since the last successful one"},
    )
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)


class EndpointCreatedSchema(EndpointSchema):
    secret = ma.fields.String(
        required=True,
        metadata={"description": "the signing secret: shown only in this answer; keep it"},
    )


class PingSchema(ma.Schema):
    event_id = ma.fields.String(required=True)


class DeliverySchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    at = UtcDateTime(required=True)
    event_id = ma.fields.String(required=True)
    event_type = ma.fields.String(required=True)
    attempt = ma.fields.Integer(required=True)
    result = ma.fields.String(
        required=True,
        metadata={
            "description": "success, retry (tried again later), failed (not retried), "
            "blocked (non-public address), dropped (endpoint disabled)"
        },
    )
    status_code = ma.fields.Integer(allow_none=True)
    latency_ms = ma.fields.Integer(allow_none=True)
    error = ma.fields.String(allow_none=True)


class EndpointPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(EndpointSchema), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True)


class DeliveryPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DeliverySchema), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True)


class DeliveryQuerySchema(StrictSchema):
    cursor = ma.fields.String(validate=validate.Length(min=1, max=512))
    limit = QueryInteger(validate=validate.Range(min=1, max=1000))


# ------------------------------------------------------------------ Alertmanager's webhook


class _Lenient(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE  # Alertmanager adds fields across versions


class AlertSchema(_Lenient):
    status = ma.fields.String(required=True, validate=validate.OneOf(("firing", "resolved")))
    labels = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)
    annotations = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.String(), load_default=dict
    )
    startsAt = ma.fields.String(required=True, validate=validate.Length(max=64))
    endsAt = ma.fields.String(load_default=None, validate=validate.Length(max=64))
    fingerprint = ma.fields.String(load_default=None, validate=validate.Length(max=64))


class NotificationSchema(_Lenient):
    """Alertmanager's webhook payload (version 4)."""

    version = ma.fields.String(load_default="4")
    groupKey = ma.fields.String(required=True, validate=validate.Length(max=4096))
    status = ma.fields.String(required=True, validate=validate.OneOf(("firing", "resolved")))
    receiver = ma.fields.String(load_default=None)
    alerts = ma.fields.List(
        ma.fields.Nested(AlertSchema), required=True, validate=validate.Length(max=100_000)
    )


class NotificationResultSchema(ma.Schema):
    queued = ma.fields.Integer(
        required=True, metadata={"description": "alerts turned into partner events"}
    )
    duplicates = ma.fields.Integer(
        required=True,
        metadata={
            "description": "alerts this notification repeated within webhooks.duplicate_window"
        },
    )
    ignored = ma.fields.Integer(
        required=True, metadata={"description": "alerts without a known partner"}
    )
