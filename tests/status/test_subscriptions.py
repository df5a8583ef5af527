"""Email subscriptions: double opt-in, per component, unsubscribe; sent from the outbox
through a real SMTP server (the local sink), so an SMTP outage loses nothing."""

from __future__ import annotations

import re
import time

from tests.harness.outbox import deliver
from tests.harness.seed import partners
from ticketing.db import db
from ticketing.status import incidents
from ticketing.status.models import Incident, Subscriber

LINK = re.compile(r"(http://localhost/status/subscription/[\w.-]+)")


def _link(mail) -> str:
    return LINK.search(mail.text()).group(1).removeprefix("http://localhost")


def _open(app, components, impact="major", title="Transactions fail"):
    keys = partners(app)
    with app.app_context():
        incident = incidents.open_incident(
            app.extensions["status"].settings,
            title,
            components,
            impact,
            "We are looking into it.",
            ("staff", keys.staff_id),
        )
        incidents.publish(incident, ("staff", keys.staff_id))
        db.session.commit()
        return incident.id


def _deliver_mail(app, sink, count: int, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while len(sink.messages) < count:
        assert time.monotonic() < deadline, f"{len(sink.messages)} of {count} mails"
        deliver(app)
        time.sleep(0.1)
    return list(sink.messages)


def test_double_opt_in_per_component_and_unsubscribe(make_app, smtp_sink):
    app = make_app(email={"smtp_server": smtp_sink.address}, page_url="http://localhost/status")
    client = app.test_client()
    page = client.get("/status").text
    assert 'id="subscribe-form"' in page
    bad = client.post("/status/subscribe", data={"email": "not-an-address"})
    assert bad.status_code == 422 and "Not subscribed" in bad.text
    assert (
        client.post(
            "/status/subscribe", data={"email": "a@x.example", "components": ["zz"]}
        ).status_code
        == 422
    )
    # Subscribed to transactions only; another address to everything.
    ok = client.post(
        "/status/subscribe", data={"email": "Ops@Acme.example", "components": ["transactions"]}
    )
    assert ok.status_code == 200 and "Check your mail" in ok.text
    client.post("/status/subscribe", data={"email": "all@globex.example"})
    # Asking again within resend_after sends nothing more.
    client.post(
        "/status/subscribe", data={"email": "ops@acme.example", "components": ["transactions"]}
    )
    mails = _deliver_mail(app, smtp_sink, 2)
    time.sleep(0.3)
    deliver(app)
    assert len(smtp_sink.messages) == 2
    first = next(m for m in mails if m.rcpt_tos == ["ops@acme.example"])
    assert first.subject.startswith("Confirm your subscription")
    # Nothing but the request until confirmed.
    _open(app, ["transactions"], title="Before confirming")
    time.sleep(0.2)
    deliver(app)
    assert len(smtp_sink.messages) == 2

    confirm_page = client.get(_link(first))
    assert confirm_page.status_code == 200 and "Confirm your subscription?" in confirm_page.text
    confirmed = client.post(_link(first) + "/confirm")
    assert confirmed.status_code == 200 and "Subscribed" in confirmed.text
    assert client.post(_link(first) + "/unsubscribe").status_code == 404  # a confirm token

    # An incident on the energy pool: not this subscriber's component.
    _open(app, ["energy-pool"], title="Pool empty")
    # One on transactions: one mail, with an unsubscribe link and one-click header.
    _open(app, ["transactions"], title="Transactions fail")
    mails = _deliver_mail(app, smtp_sink, 3)
    time.sleep(0.3)
    deliver(app)
    assert len(smtp_sink.messages) == 3
    mail = mails[2]
    assert mail.rcpt_tos == ["ops@acme.example"] and mail.subject == "Incident: Transactions fail"
    assert "We are looking into it." in mail.text()
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    leave = _link(mail)
    assert "Unsubscribe from these mails?" in client.get(leave).text
    assert client.post(leave + "/unsubscribe").status_code == 200
    with app.app_context():
        assert (
            db.session.execute(
                db.select(Subscriber.email).where(Subscriber.confirmed_at.is_not(None))
            )
            .scalars()
            .all()
            == []
        )
    assert client.get(leave).status_code == 404
    assert client.get("/status/subscription/forged").status_code == 404


def test_an_smtp_outage_loses_nothing(make_app, smtp_sink):
    app = make_app(email={"smtp_server": smtp_sink.address}, page_url="http://localhost/status")
    with app.app_context():
        db.session.add(
            Subscriber(email="ops@acme.example", components=[], confirmed_at=incidents.utcnow())
        )
        db.session.commit()
    smtp_sink.stop()
    _open(app, ["api"])
    report = None
    with app.app_context():
        report = app.extensions["outbox"].deliver()
    assert report.failed >= 1
    smtp_sink.start()
    with app.app_context():
        from ticketing.outbox.models import OutboxMessage

        db.session.execute(db.update(OutboxMessage).values(next_attempt_at=incidents.utcnow()))
        db.session.commit()
    [mail] = _deliver_mail(app, smtp_sink, 1)
    assert mail.subject == "Incident: Transactions fail"
    with app.app_context():
        assert db.session.execute(db.select(db.func.count(Incident.id))).scalar_one() == 1


def test_without_an_smtp_server_there_is_no_form(make_app):
    app = make_app()
    client = app.test_client()
    assert 'id="subscribe-form"' not in client.get("/status").text
    assert client.post("/status/subscribe", data={"email": "a@b.example"}).status_code == 404
