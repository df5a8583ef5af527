"""Rows of the ticket service that tests start from: partners, staff, keys, tickets, events.

Every test that needs them seeds them here, on an app (see :mod:`tests.harness.app`):

- :class:`Maker` (the ``make`` fixture of tests/ticketing): one partner, staff
  member or ticket at a time, tickets through the API;
- :func:`seed`: a partner and an agent with keys (:class:`Keys`);
- :func:`partners`: partners A and B and an agent with keys (:class:`Partners`);
- :func:`issue_keys`: ``n`` partners and an agent (:class:`KeySet`), for gunicorn instances;
- :func:`tickets_in_every_status`: two partners, an agent and tickets of each status;
- :func:`security_events`: failed logins and a refused access in the security log.

(The exporter's tests fill the platform's own tables: tests/harness/platform_data.py.)
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from ticketing.auth import issue_key
from ticketing.db import db
from ticketing.models import Partner, Staff, Ticket
from ticketing.security import EventType, record_event


@dataclass
class Party:
    """A partner or staff member with an API key."""

    kind: str
    id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


class Maker:
    """Creates rows directly, and tickets through the API."""

    def __init__(self, app, client):
        self.app = app
        self.client = client
        self._staff = 0

    def partner(self, name: str = "Acme Energy", status: str = "active") -> Party:
        with self.app.app_context():
            partner = Partner(name=name, status=status)
            db.session.add(partner)
            db.session.flush()
            _, raw = issue_key(partner=partner, name="test")
            db.session.commit()
            return Party("partner", partner.id, raw)

    def staff(self, role: str = "agent", name: str | None = None) -> Party:
        self._staff += 1
        with self.app.app_context():
            member = Staff(
                name=name or f"{role} {self._staff}",
                email=f"{role}{self._staff}@support.example",
                role=role,
            )
            db.session.add(member)
            db.session.flush()
            _, raw = issue_key(staff=member, name="test")
            db.session.commit()
            return Party("staff", member.id, raw)

    def ticket(
        self,
        partner: Party,
        title: str = "Question about our account",
        description: str = "Please have a look.",
        **fields: Any,
    ) -> dict:
        response = self.client.post(
            "/api/v1/tickets",
            headers=partner.headers,
            json={"title": title, "description": description, **fields},
        )
        assert response.status_code == 201, response.json
        return response.json

    def upload(
        self,
        party: Party,
        ticket_id: int,
        content: bytes = b"log line\n",
        filename: str = "log.txt",
        content_type: str = "text/plain",
        staff: bool = False,
        **form: str,
    ):
        prefix = "/api/v1/staff" if staff else "/api/v1"
        return self.client.post(
            f"{prefix}/tickets/{ticket_id}/attachments",
            headers=party.headers,
            data={"file": (io.BytesIO(content), filename, content_type), **form},
            content_type="multipart/form-data",
        )


@dataclass
class Keys:
    partner_id: int
    partner: str
    staff_id: int
    staff: str


def seed(app: Flask) -> Keys:
    """A partner (Acme Energy) and an agent, each with an API key."""
    with app.app_context():
        partner = Partner(name="Acme Energy")
        staff = Staff(
            name="Sam Agent", email=f"sam-{os.urandom(3).hex()}@example.org", role="agent"
        )
        db.session.add_all([partner, staff])
        db.session.flush()
        _, partner_key = issue_key(partner=partner)
        _, staff_key = issue_key(staff=staff)
        db.session.commit()
        return Keys(partner.id, partner_key, staff.id, staff_key)


@dataclass
class Partners:
    a_id: int
    a: str
    b_id: int
    b: str
    staff_id: int
    staff: str


def partners(app: Flask) -> Partners:
    with app.app_context():
        a, b = Partner(name="Acme Energy"), Partner(name="Globex")
        staff = Staff(name="Sam", email=f"sam-{os.urandom(3).hex()}@example.org", role="agent")
        db.session.add_all([a, b, staff])
        db.session.flush()
        _, a_key = issue_key(partner=a)
        _, b_key = issue_key(partner=b)
        _, staff_key = issue_key(staff=staff)
        db.session.commit()
        return Partners(a.id, a_key, b.id, b_key, staff.id, staff_key)


@dataclass(frozen=True)
class KeySet:
    partner_ids: list[int]
    partners: list[str]  # raw API keys, in the order of partner_ids
    staff_id: int
    staff: str


def issue_keys(app: Flask, partners: int = 1) -> KeySet:
    """``partners`` partners ("Partner 001"...) and one agent, each with an API key."""
    with app.app_context():
        rows = [Partner(name=f"Partner {n:03d}") for n in range(1, partners + 1)]
        staff = Staff(
            name="Sam Agent", email=f"sam-{os.urandom(3).hex()}@example.org", role="agent"
        )
        db.session.add_all([*rows, staff])
        db.session.flush()
        raw = [issue_key(partner=p)[1] for p in rows]
        _, staff_key = issue_key(staff=staff)
        db.session.commit()
        return KeySet([p.id for p in rows], raw, staff.id, staff_key)


@dataclass(frozen=True)
class Who:
    kind: str
    id: int


def security_events(app: Flask) -> None:
    """Seven failed logins, one multiple-failed-logins and one refused access in the log."""
    with app.app_context():
        for i in range(7):
            record_event(
                EventType.FAILED_AUTH,
                actor=None,
                client_ip=f"192.0.2.{i}",
                method="GET",
                path="/api/v1/echo",
                details={"reason": "unknown"},
            )
        record_event(
            EventType.MULTIPLE_FAILED_LOGINS,
            actor=None,
            client_ip="192.0.2.1",
            method="GET",
            path="/api/v1/echo",
            details={"dimensions": ["ip"]},
        )
        record_event(
            EventType.UNAUTHORIZED_ACCESS,
            actor=Who("partner", 2),
            client_ip="198.51.100.2",
            method="GET",
            path="/api/v1/things/3",
            details={"resource": "thing", "resource_id": "3"},
        )


@dataclass
class TicketingData:
    url: str
    staff_key: str
    acme_key: str  # partner 1
    globex_key: str  # partner 2
    acme_id: int
    globex_id: int
    #: an admin's key: security events are for admins only
    admin_key: str = ""
    #: open (open + in_progress) tickets per partner and priority
    open_tickets: dict[int, dict[str, int]] = field(default_factory=dict)


def tickets_in_every_status(app: Flask) -> TicketingData:
    """Acme and Globex, an agent, their keys, and tickets of every status (tests/live)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with app.app_context():
        acme, globex = Partner(name="Acme Energy"), Partner(name="Globex")
        staff = Staff(name="Sam Agent", email="sam@example.org", role="agent")
        admin = Staff(name="Ada Admin", email="ada@example.org", role="admin")
        db.session.add_all([acme, globex, staff, admin])
        db.session.flush()
        _, staff_key = issue_key(staff=staff)
        _, admin_key = issue_key(staff=admin)
        _, acme_key = issue_key(partner=acme)
        _, globex_key = issue_key(partner=globex)
        tickets = [
            (acme, "open", "high"),
            (acme, "open", "high"),
            (acme, "in_progress", "low"),
            (acme, "resolved", "critical"),
            (acme, "closed", "medium"),
            (globex, "open", "medium"),
            (globex, "open", "critical"),
            (globex, "in_progress", "medium"),
        ]
        for partner, status, priority in tickets:
            db.session.add(
                Ticket(
                    partner_id=partner.id,
                    title="t",
                    description="d",
                    category="other",
                    status=status,
                    priority=priority,
                )
            )
        db.session.commit()
        data = TicketingData(
            url, staff_key, acme_key, globex_key, acme.id, globex.id, admin_key=admin_key
        )
    data.open_tickets = {
        data.acme_id: {"low": 1, "medium": 0, "high": 2, "critical": 0},
        data.globex_id: {"low": 0, "medium": 2, "high": 0, "critical": 1},
    }
    return data
