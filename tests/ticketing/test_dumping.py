"""Response schemas dump exactly what marshmallow's own ``dump`` would.

Every response schema derives from ``FastDumpSchema``; here each is compared
with marshmallow's ``Schema.dump`` on the same objects, read back from the
database in every state a ticket can be in.
"""

from __future__ import annotations

import inspect as pyinspect
from datetime import datetime, timedelta, timezone

import marshmallow as ma
import pytest

from ticketing.api import schemas
from ticketing.api.dumping import FastDumpSchema
from ticketing.api.fields import UtcDateTime
from ticketing.db import db
from ticketing.models import Attachment, Message, Ticket, TicketAudit, utcnow

RESPONSE_SCHEMAS = sorted(
    (
        cls
        for _, cls in pyinspect.getmembers(schemas, pyinspect.isclass)
        if issubclass(cls, FastDumpSchema)
        and cls.__module__ == schemas.__name__
        and not cls.__name__.startswith("_")
    ),
    key=lambda cls: cls.__name__,
)


def marshmallow_dump(schema: ma.Schema, obj, many: bool = False):
    """What marshmallow itself produces, nested schemas included."""
    if many:
        return [marshmallow_dump(schema, item) for item in obj]
    result = {}
    for name, field in schema.dump_fields.items():
        if isinstance(field, ma.fields.List) and isinstance(field.inner, ma.fields.Nested):
            value = [marshmallow_dump(field.inner.schema, item) for item in obj[name]]
        else:
            value = field.serialize(name, obj, accessor=schema.get_attribute)
        if value is not ma.missing:
            result[field.data_key or name] = value
    assert result == ma.Schema.dump(schema, obj) or any(
        isinstance(f, ma.fields.List) for f in schema.dump_fields.values()
    )
    return result


def test_every_response_schema_is_fast():
    names = {cls.__name__ for cls in RESPONSE_SCHEMAS}
    assert {
        "PartnerTicketSchema",
        "StaffTicketSchema",
        "PartnerTicketPageSchema",
        "StaffTicketPageSchema",
        "PartnerMessageSchema",
        "StaffMessageSchema",
        "PartnerAttachmentSchema",
        "StaffAttachmentSchema",
        "AuditEntrySchema",
        "PartnerMessagePageSchema",
        "StaffMessagePageSchema",
        "PartnerAttachmentPageSchema",
        "StaffAttachmentPageSchema",
        "AuditPageSchema",
    } <= names


def test_tickets_in_every_state_dump_as_marshmallow_does(app, client, make):
    acme = make.partner()
    agent = make.staff()
    ids = [make.ticket(acme, title=f"Ticket {n}")["id"] for n in range(6)]
    staff = "/api/v1/staff/tickets/{}"
    client.post(
        staff.format(ids[1]) + "/assign", headers=agent.headers, json={"assignee_id": agent.id}
    )
    client.post(
        staff.format(ids[1]) + "/messages", headers=agent.headers, json={"body": "Looking into it."}
    )
    client.post(
        staff.format(ids[2]) + "/status", headers=agent.headers, json={"status": "resolved"}
    )
    client.post(f"/api/v1/tickets/{ids[3]}/close", headers=acme.headers)
    client.post(
        f"/api/v1/tickets/{ids[4]}/messages",
        headers=acme.headers,
        json={"body": "Any news? ünïcödé ✓"},
    )
    make.upload(agent, ids[4], staff=True, internal="true")
    make.upload(acme, ids[4])
    with app.app_context():
        late = db.session.get(Ticket, ids[5])  # overdue on both counts
        late.first_response_due_at = late.resolution_due_at = utcnow() - timedelta(days=1)
        db.session.commit()

    with app.app_context():
        tickets = db.session.execute(db.select(Ticket).order_by(Ticket.id)).scalars().all()
        db.session.expire(tickets[0])  # an object whose columns are not loaded
        for cls in (schemas.PartnerTicketSchema, schemas.StaffTicketSchema):
            schema = cls()
            for ticket in tickets:
                assert schema.dump(ticket) == marshmallow_dump(schema, ticket)
            assert cls(many=True).dump(tickets) == marshmallow_dump(schema, tickets, many=True)
        for cls in (schemas.PartnerTicketPageSchema, schemas.StaffTicketPageSchema):
            page = {"items": tickets, "next_cursor": None}
            assert cls().dump(page) == marshmallow_dump(cls(), page)
        overdue = schemas.StaffTicketSchema().dump(tickets[5])
        assert overdue["overdue"] and overdue["first_response_overdue"]

        rows = {
            (schemas.PartnerMessageSchema, schemas.StaffMessageSchema): Message,
            (schemas.PartnerAttachmentSchema, schemas.StaffAttachmentSchema): Attachment,
            (schemas.AuditEntrySchema,): TicketAudit,
        }
        for classes, model in rows.items():
            found = db.session.execute(db.select(model)).scalars().all()
            assert found
            for cls in classes:
                assert cls(many=True).dump(found) == marshmallow_dump(cls(), found, many=True)
        pages = {
            (schemas.PartnerMessagePageSchema, schemas.StaffMessagePageSchema): Message,
            (schemas.PartnerAttachmentPageSchema, schemas.StaffAttachmentPageSchema): Attachment,
            (schemas.AuditPageSchema,): TicketAudit,
        }
        for classes, model in pages.items():
            found = db.session.execute(db.select(model)).scalars().all()
            for cls in classes:
                for page in (
                    {"items": found, "next_cursor": "abc"},
                    {"items": [], "next_cursor": None},
                ):
                    assert cls().dump(page) == marshmallow_dump(cls(), page)


class _Thing:
    def __init__(self, **values):
        self.__dict__.update(values)

    @property
    def shout(self):
        return self.word.upper()


class Odd(FastDumpSchema):
    """Field kinds the service's schemas do not use (yet)."""

    renamed = ma.fields.String(data_key="other-name")
    source = ma.fields.String(attribute="word")
    shout = ma.fields.String()
    count = ma.fields.Integer(as_string=True)
    flag = ma.fields.Boolean()
    text_number = ma.fields.Integer()
    defaulted = ma.fields.String(dump_default="fallback")
    absent = ma.fields.String()
    nested_path = ma.fields.String(attribute="inner.word")
    when = UtcDateTime()
    decimal = ma.fields.Float()
    method = ma.fields.Method("_method")
    function = ma.fields.Function(lambda obj: len(ma.utils.get_value(obj, "word")))

    def _method(self, obj):
        return f"<{ma.utils.get_value(obj, 'word')}>"


class WithHook(Odd):
    @ma.post_dump
    def _mark(self, data, **kwargs):
        return {**data, "hooked": True}


@pytest.mark.parametrize(
    "value",
    [
        _Thing(
            renamed="r",
            word="w",
            count=3,
            flag=1,
            text_number="12",
            inner=_Thing(word="x"),
            when=datetime(2025, 1, 31, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))),
            decimal=2,
        ),
        {
            "renamed": None,
            "word": "w",
            "count": None,
            "flag": False,
            "text_number": 5,
            "inner": {"word": "y"},
            "when": datetime(2025, 1, 31, 12, 0, 0, 5),
            "decimal": 1.5,
            "shout": "loud",
        },
    ],
)
def test_unusual_fields_dump_as_marshmallow_does(value):
    for schema in (Odd(), WithHook()):
        assert schema.dump(value) == ma.Schema.dump(schema, value)
        assert schema.dump([value], many=True) == ma.Schema.dump(schema, [value], many=True)
    assert WithHook().dump(value)["hooked"] is True
