"""Security review findings 3 and 4: who reads security events, and how big their table grows.

3. Security events are for admins only, through the staff API as on the support
   console's security page: one rule (``ticketing.security.api.may_read_events``).
4. Events fold IPv6 clients by network (``security.events.ipv6_prefix``, /64) and
   keep at most ``security.events.max_rows_per_type_per_day`` rows per type and
   day; beyond that occurrences fold into the type's overflow row of the day.
"""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

import pytest

from tests.harness.app import migrated_app, ticketing_config
from tests.harness.security import counter, events
from tests.harness.seed import Maker
from ticketing.security import EventType, record_event
from ticketing.security.api import may_read_events
from ticketing.security.events import fold_client_ip

EVENTS = "/api/v1/staff/security-events"


@pytest.fixture
def service(db_url, tmp_path):
    yield from migrated_app(ticketing_config(db_url, tmp_path))


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("admin", 200),
        ("agent", 403),
        ("inactive_admin", 401),
        ("partner", 403),
        ("nobody", 401),
        ("wrong_key", 401),
    ],
)
def test_only_admins_read_security_events(service, who, status):
    maker = Maker(service, service.test_client())
    if who in ("admin", "agent"):
        headers = maker.staff(role=who).headers
    elif who == "inactive_admin":
        party = maker.staff(role="admin")
        with service.app_context():
            from ticketing.db import db
            from ticketing.models import Staff

            db.session.get(Staff, party.id).active = False
            db.session.commit()
        headers = party.headers
    elif who == "partner":
        headers = maker.partner().headers
    elif who == "wrong_key":
        headers = {"X-API-Key": "pw_000000000000_not-a-key"}
    else:
        headers = {}
    response = service.test_client().get(EVENTS, headers=headers)
    assert response.status_code == status, response.json
    if status != 200:
        assert set(response.json["error"]) == {"code", "message", "details"}


@pytest.mark.parametrize(
    ("actor", "may"),
    [
        (SimpleNamespace(kind="staff", id=1, role="admin"), True),
        (SimpleNamespace(kind="staff", id=1, role="agent"), False),
        (SimpleNamespace(kind="staff", id=1, role="Admin"), False),
        (SimpleNamespace(kind="staff", id=1), False),  # no role: not an admin
        (SimpleNamespace(kind="partner", id=1, role="admin"), False),
        (None, False),
    ],
)
def test_the_one_rule(actor, may):
    assert may_read_events(actor) is may


@pytest.mark.parametrize(
    ("ip", "prefix", "folded"),
    [
        ("2001:db8:1:2::1", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", 64, "2001:db8:1:3::/64"),
        ("2001:db8:1:2::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2::1", 128, "2001:db8:1:2::1"),
        ("2001:DB8:1:2:0:0:0:1", 64, "2001:db8:1:2::/64"),
        ("fe80::1%eth0", 64, "fe80::/64"),
        ("::ffff:192.0.2.7", 64, "192.0.2.7"),
        ("192.0.2.7", 64, "192.0.2.7"),
        ("not-an-ip", 64, "not-an-ip"),
        (None, 64, None),
    ],
)
def test_fold_client_ip(ip, prefix, folded):
    assert fold_client_ip(ip, prefix) == folded


def _record(app, ip: str, actor=None, event_type=EventType.FAILED_AUTH):
    with app.app_context():
        return record_event(
            event_type, client_ip=ip, actor=actor, method="GET", path="/api/v1/x", details={"n": 1}
        )


@pytest.mark.parametrize(
    ("settings", "sources", "rows"),
    [
        # 100 addresses of one /64: one row (the default prefix).
        ({}, [f"2001:db8:0:1::{i:x}" for i in range(100)], 1),
        # ... of 100 /64s: capped at 5 rows + the overflow row.
        (
            {"max_rows_per_type_per_day": 5},
            [f"2001:db8:0:{i:x}::1" for i in range(100)],
            6,
        ),
        # A /48 prefix folds those 100 /64s into one.
        ({"ipv6_prefix": 48}, [f"2001:db8:0:{i:x}::1" for i in range(100)], 1),
        # 128: per address, still capped.
        (
            {"ipv6_prefix": 128, "max_rows_per_type_per_day": 10},
            [f"2001:db8::{i:x}" for i in range(100)],
            11,
        ),
        # IPv4 addresses are capped the same way.
        ({"max_rows_per_type_per_day": 3}, [f"192.0.2.{i}" for i in range(50)], 4),
        # Under the cap nothing overflows.
        ({"max_rows_per_type_per_day": 3}, ["192.0.2.1", "192.0.2.2", "192.0.2.1"], 2),
    ],
)
def test_rows_per_type_and_day_are_bounded(make_app, settings, sources, rows):
    app = make_app(security={"events": settings})
    before = counter("security_events_total", type="FAILED_AUTH", severity="info")
    for ip in sources:
        assert _record(app, ip) is not None
    stored = events(app, type="FAILED_AUTH")
    assert len(stored) == rows
    assert sum(row.count for row in stored) == len(sources)  # every occurrence counted
    assert counter("security_events_total", type="FAILED_AUTH", severity="info") - before == len(
        sources
    )
    overflow = [row for row in stored if (row.details or {}).get("overflow")]
    cap = settings.get("max_rows_per_type_per_day", 1000)
    if len(stored) > cap:
        [row] = overflow
        assert row.client_ip is None and row.actor_kind is None
        assert row.details["max_rows_per_type_per_day"] == cap
        assert row.details["latest"]["client_ip"] == fold_client_ip(
            sources[-1], settings.get("ipv6_prefix", 64)
        )
        assert row.count == len(sources) - cap
    else:
        assert overflow == []
    for row in stored:
        if row.client_ip and ":" in row.client_ip and settings.get("ipv6_prefix", 64) < 128:
            assert ipaddress.ip_network(row.client_ip).prefixlen == settings.get("ipv6_prefix", 64)


def test_the_cap_is_per_type_and_other_types_still_get_rows(make_app):
    app = make_app(security={"events": {"max_rows_per_type_per_day": 2}})
    for i in range(5):
        _record(app, f"192.0.2.{i}")
    for i in range(2):
        _record(app, f"192.0.2.{i}", event_type=EventType.RATE_LIMIT_EXCEEDED)
    assert len(events(app, type="FAILED_AUTH")) == 3
    assert len(events(app, type="RATE_LIMIT_EXCEEDED")) == 2
    # A source that already has its row keeps adding to it beyond the cap.
    _record(app, "192.0.2.0")
    [first] = [e for e in events(app, type="FAILED_AUTH") if e.client_ip == "192.0.2.0"]
    assert first.count == 2


def test_the_events_query_finds_an_ipv6_address_in_its_network(make_app):
    from ticketing.security.api import find_events

    app = make_app()
    _record(app, "2001:db8:5:6::1")
    _record(app, "2001:db8:5:6::2")
    _record(app, "2001:db8:5:7::1")
    with app.app_context():
        for ip in ("2001:db8:5:6::99", "2001:db8:5:6::/64"):
            rows, _ = find_events({"ip": ip})
            assert [(row.client_ip, row.count) for row in rows] == [("2001:db8:5:6::/64", 2)]


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"ipv6_prefix": 0}, "security.events.ipv6_prefix"),
        ({"ipv6_prefix": 129}, "security.events.ipv6_prefix"),
        ({"ipv6_prefix": "64"}, "security.events.ipv6_prefix"),
        ({"max_rows_per_type_per_day": 0}, "security.events.max_rows_per_type_per_day"),
        ({"max_rows_per_type_per_day": True}, "security.events.max_rows_per_type_per_day"),
    ],
)
def test_settings_are_checked(section, problem):
    from ticketing.config import ConfigError
    from ticketing.security.settings import check_sections

    with pytest.raises(ConfigError) as raised:
        check_sections({"security": {"events": section}})
    assert problem in str(raised.value)
