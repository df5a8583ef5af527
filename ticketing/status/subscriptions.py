"""Email subscriptions: double opt-in, per component, an unsubscribe link in every mail.

    POST /status/subscribe  (email, components)   -> a confirmation request by mail
    GET  /status/subscription/<token>             -> a page with Confirm / Unsubscribe
    POST /status/subscription/<token>/confirm     -> confirmed: incident and maintenance mail
    POST /status/subscription/<token>/unsubscribe -> gone (also RFC 8058 one-click)

Tokens are signed (itsdangerous, with the service's secret key), never stored:
a confirmation token lasts a week, an unsubscribe token as long as the
subscription. Confirming and unsubscribing are POSTs behind a page, so mail
scanners that open links change nothing.

Every mail is an outbox message (kind ``status_email``) written in the same
transaction as its cause and sent by the outbox's delivery thread through SMTP
(``status.email``), retried with backoff: an SMTP outage loses nothing. One
address gets at most one confirmation request per ``email.resend_after``.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ticketing.db import db
from ticketing.models import utcnow
from ticketing.outbox.delivery import DeliveryReport
from ticketing.outbox.metrics import notifications_delivered, notifications_failed
from ticketing.outbox.store import claim_due, enqueue_payload, mark_delivered, mark_failed
from ticketing.status.models import Subscriber
from ticketing.status.settings import EmailSettings, StatusSettings

log = logging.getLogger(__name__)

KIND = "status_email"
CONFIRM_MAX_AGE = 7 * 86400


class SubscriptionError(ValueError):
    pass


def enabled() -> bool:
    state = current_app.extensions.get("status")
    return bool(
        state is not None and state.settings.email.enabled and current_app.config.get("SECRET_KEY")
    )


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="status-subscription")


def token(subscriber: Subscriber, action: str) -> str:
    return _serializer().dumps({"s": subscriber.id, "a": action})


def read_token(value: str, action: str) -> Subscriber | None:
    """The subscriber a token names (None: invalid, expired, or no longer subscribed)."""
    try:
        data = _serializer().loads(value, max_age=CONFIRM_MAX_AGE if action == "confirm" else None)
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict) or data.get("a") != action or not isinstance(data.get("s"), int):
        return None
    return db.session.get(Subscriber, data["s"])


def subscribe(settings: StatusSettings, email: str, components: list[str]) -> bool:
    """Record (or update) the address's choice and ask it to confirm; False when a
    request went to it lately (nothing sent; the answer is the same, so the form
    tells nobody whether an address is subscribed)."""
    email = email.strip()
    if not _looks_like_email(email):
        raise SubscriptionError("enter an email address such as ops@example.com")
    chosen = [c for c in dict.fromkeys(components) if settings.component(c) is not None]
    if len(chosen) != len(set(components)):
        raise SubscriptionError("choose among the listed components")
    now = utcnow()
    subscriber = db.session.execute(
        db.select(Subscriber).where(Subscriber.email == email.lower())
    ).scalar_one_or_none()
    if subscriber is None:
        subscriber = Subscriber(email=email.lower(), components=chosen, created_at=now)
        db.session.add(subscriber)
        db.session.flush()
    elif subscriber.confirmed_at is None:
        subscriber.components = chosen
    if subscriber.asked_at is not None and (
        (now - subscriber.asked_at).total_seconds() < settings.email.resend_after
    ):
        return False
    subscriber.asked_at = now
    link = _link(f"subscription/{token(subscriber, 'confirm')}")
    names = ", ".join(c.name for c in settings.components if not chosen or c.id in chosen)
    _queue(
        subscriber,
        f"Confirm your subscription to {settings.page_name}",
        f"Someone (we hope you) asked for email about {names} on {settings.page_name}.\n\n"
        f"Confirm here: {link}\n\nIf it was not you, ignore this mail: nothing more is sent.",
        unsubscribe=False,
    )
    return True


def confirm(subscriber: Subscriber) -> None:
    if subscriber.confirmed_at is None:
        subscriber.confirmed_at = utcnow()


def unsubscribe(subscriber: Subscriber) -> None:
    db.session.delete(subscriber)


def _link(path: str) -> str:
    """An address under the page (``status.page_url``, else the request's; outside a
    request without ``page_url``: a path only)."""
    from ticketing.status.notify import page_url

    base = page_url() or "/status"
    return f"{base.rstrip('/')}/{path}"


def _looks_like_email(value: str) -> bool:
    local, at, domain = value.rpartition("@")
    return (
        bool(at and local and "." in domain)
        and len(value) <= 320
        and not any(c.isspace() or not c.isprintable() or c in "<>,;\"'" for c in value)
    )


def notify(settings: StatusSettings, components: list[str], subject: str, body: str) -> int:
    """One mail to every confirmed subscriber of any of ``components``; returns how many."""
    if not enabled():
        return 0
    count = 0
    for subscriber in db.session.execute(
        db.select(Subscriber).where(Subscriber.confirmed_at.is_not(None)).order_by(Subscriber.id)
    ).scalars():
        if subscriber.components and not set(subscriber.components) & set(components):
            continue
        _queue(subscriber, subject, body)
        count += 1
    return count


def _queue(subscriber: Subscriber, subject: str, body: str, unsubscribe: bool = True) -> None:
    headers: dict[str, str] = {}
    if unsubscribe:
        leave = token(subscriber, "unsubscribe")
        link, post = _link(f"subscription/{leave}"), _link(f"unsubscribe/{leave}")
        body += f"\n\n--\nUnsubscribe: {link}\n"
        headers = {
            "List-Unsubscribe": f"<{post}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    enqueue_payload(
        KIND,
        f"email:{uuid.uuid4().hex}",
        {"to": subscriber.email, "subject": subject, "body": body, "headers": headers},
    )


# ------------------------------------------------------------------ delivery


def deliver(max_batches: int | None = None) -> DeliveryReport:
    """Send due mails through SMTP, one connection per batch; failures are retried."""
    report = DeliveryReport()
    state = current_app.extensions["status"]
    email: EmailSettings = state.settings.email
    outbox = current_app.extensions["outbox"].settings
    if not email.enabled:
        return report
    batches = 0
    while max_batches is None or batches < max_batches:
        batch = claim_due(20, outbox.claim_timeout, kinds={KIND})
        if not batch:
            break
        batches += 1
        try:
            with _connect(email) as smtp:
                for claimed in batch:
                    smtp.send_message(_message(email, claimed.payload))
                    mark_delivered([claimed.id])
                    notifications_delivered.labels(kind=KIND).inc()
                    report.delivered += 1
        except (smtplib.SMTPException, OSError) as exc:
            failed = [c for c in batch if c.id not in _delivered_ids(batch)]
            mark_failed(failed, f"{type(exc).__name__}: {exc}", outbox.backoff)
            report.failed += len(failed)
            notifications_failed.labels(kind=KIND).inc(len(failed))
            report.errors.append(str(exc))
            log.warning("status: %d mail(s) not sent, retrying later: %s", len(failed), exc)
            break
        if len(batch) < 20:
            break
    return report


def _delivered_ids(batch: list[Any]) -> set[int]:
    from ticketing.outbox.models import OutboxMessage

    ids = [c.id for c in batch]
    return set(
        db.session.execute(
            db.select(OutboxMessage.id).where(
                OutboxMessage.id.in_(ids), OutboxMessage.delivered_at.is_not(None)
            )
        ).scalars()
    )


def _connect(email: EmailSettings) -> smtplib.SMTP:
    assert email.smtp_server is not None
    host, _, port = email.smtp_server.rpartition(":")
    smtp = smtplib.SMTP(host, int(port), timeout=email.timeout)
    if email.starttls:
        smtp.starttls()
    if email.username:
        password = Path(email.password_file).read_text().strip() if email.password_file else ""
        smtp.login(email.username, password)
    return smtp


def _message(email: EmailSettings, payload: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["From"] = email.sender
    message["To"] = payload["to"]
    message["Subject"] = payload["subject"]
    message["Message-ID"] = make_msgid(domain=email.sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (payload.get("headers") or {}).items():
        message[name] = value
    message.set_content(payload["body"])
    return message
