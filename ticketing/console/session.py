"""Console sessions: signing in with a staff API key, who a session belongs to, signing out.

Sessions live on the server, one ``console_sessions`` row each
(:class:`ticketing.models.ConsoleSession`). The browser's cookie (Flask's
signed session cookie, which also carries the CSRF secret and flash
messages) holds only a random session token; the row stores its SHA-256,
never the token, and nothing in the cookie names the key. Every request
looks the row up and lets it through while:

- it is not ended (signed out, or ended from another session's page);
- it was used within ``console.idle_timeout``;
- it is younger than ``console.session_lifetime``;
- its key is valid (:func:`ticketing.auth.key_owner`: revoked, suspended,
  deactivated are refused), so revoking a key ends all its sessions.

A refused session is ended on the server (with the reason) and dropped from
the cookie. ``last_seen_at`` is written at most once a minute per session
(or every half idle timeout, when that is shorter).

    actor = sign_in(raw_key)      # Actor, or raises SignInRefused (reason for the page)
    session_actor()               # the signed-in staff member of this request, or None
    current_session()             # the request's ConsoleSession row, or None
    active_sessions(staff_id)     # the staff member's sessions that still count
    end_session(row, "ended")     # ends a session (the caller commits)
    sign_out()
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, g, request, session
from sqlalchemy.orm.attributes import set_committed_value

from ticketing import auth
from ticketing.auth import Actor
from ticketing.console.settings import ConsoleSettings
from ticketing.db import db
from ticketing.models import ApiKey, ConsoleSession, utcnow

#: The cookie's entry holding the session token.
SESSION_KEY = "sid"
#: ``last_seen_at`` is written at most this often per session.
LAST_SEEN_RESOLUTION = timedelta(seconds=60)
_DIGEST_CHARS = 24  # the rate limits' digest of a key: the first 24 hex digits of its SHA-256
_G_KEY = "console_session"
log = logging.getLogger("ticketing.console")


class SignInRefused(Exception):
    """A sign-in that did not work; ``message`` is for the page, ``status`` for the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class _Resolved:
    """What the request's cookie stands for (worked out once per request)."""

    row: ConsoleSession | None
    actor: Actor | None
    key_hash: str | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _settings() -> ConsoleSettings:
    settings: ConsoleSettings = current_app.extensions["console"]
    return settings


def _client_ip() -> str | None:
    monitor = current_app.extensions.get("security_monitor")
    ip = monitor.client_ip() if monitor is not None else request.remote_addr
    return ip[:45] if ip else None


def _seen_resolution(settings: ConsoleSettings) -> timedelta:
    return min(LAST_SEEN_RESOLUTION, timedelta(seconds=settings.idle_timeout / 2))


def sign_in(raw_key: str) -> Actor:
    """Check ``raw_key`` as the API does (a failure counts as a failed key check) and start
    a new server-side session for its staff member. Partner keys are refused."""
    actor = auth.authenticate(raw_key.strip())
    db.session.commit()  # the key's last use, and what auth_failed's receivers wrote
    if actor is None:
        raise SignInRefused(401, "That API key is not valid.")
    if not actor.is_staff:
        raise SignInRefused(
            403, "That is a partner API key: only support staff can sign in to the console."
        )
    key = db.session.get(ApiKey, actor.key_id)
    assert key is not None  # the key authenticate() just accepted
    previous = current_session()
    if previous is not None:  # signing in again replaces the session of this browser
        end_session(previous, "signed_out")
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = ConsoleSession(
        token_hash=token_hash(token),
        key_id=key.id,
        staff_id=actor.id,
        created_at=now,
        last_seen_at=now,
        ip=_client_ip(),
        user_agent=request.user_agent.string[:400] or None,
    )
    db.session.add(row)
    db.session.commit()
    log.info(
        "console session %s started: staff %s, key %s, ip %s", row.id, actor.id, key.prefix, row.ip
    )
    session.clear()  # a new session: nothing from before the sign-in carries over
    session.permanent = True
    session[SESSION_KEY] = token
    g.pop(_G_KEY, None)
    return actor


def sign_out() -> None:
    """End this browser's session on the server (committed) and clear its cookie."""
    row = current_session()
    if row is not None:
        end_session(row, "signed_out")
        db.session.commit()
    session.clear()
    g.pop(_G_KEY, None)


def end_session(row: ConsoleSession, reason: str, by: Actor | None = None) -> None:
    """End ``row`` with ``reason`` (in ``db.session``; the caller commits) and log it."""
    if row.ended_at is not None:
        return
    row.ended_at = utcnow()
    row.end_reason = reason
    log.info(
        "console session %s ended (%s): staff %s%s",
        row.id,
        reason,
        row.staff_id,
        f", by staff {by.id}" if by is not None else "",
    )


def _resolve() -> _Resolved:
    """Find and check the request's session once per request (see the module's docstring)."""
    cached: _Resolved | None = g.get(_G_KEY)
    if cached is not None:
        return cached
    resolved = _Resolved(None, None, None)
    token = session.get(SESSION_KEY) if request.path.startswith("/console/") else None
    if isinstance(token, str) and 0 < len(token) <= 100:
        resolved = _check(token)
        if resolved.actor is None:
            session.pop(SESSION_KEY, None)  # the browser is signed out
    setattr(g, _G_KEY, resolved)
    return resolved


def _check(token: str) -> _Resolved:
    row = db.session.execute(
        db.select(ConsoleSession).where(ConsoleSession.token_hash == token_hash(token))
    ).scalar_one_or_none()
    if row is None or row.ended_at is not None:
        return _Resolved(None, None, None)
    settings = _settings()
    now = utcnow()
    reason = _expiry(row, now, settings)
    key = row.key
    actor: Actor | None = None
    if reason is None:
        actor, _why = auth.key_owner(key)
        if actor is None or not actor.is_staff or actor.id != row.staff_id:
            actor, reason = None, "key"
    if actor is None:
        end_session(row, reason or "key")
        db.session.commit()
        return _Resolved(None, None, None)
    if now - row.last_seen_at >= _seen_resolution(settings):
        _touch(row, now, settings)
    auth.record_use(key)
    return _Resolved(row, actor, key.key_hash)


def _expiry(row: ConsoleSession, now: datetime, settings: ConsoleSettings) -> str | None:
    """Why ``row`` no longer counts at ``now`` (``idle``, ``expired``), or None."""
    if now - row.created_at > timedelta(seconds=settings.session_lifetime):
        return "expired"
    if now - row.last_seen_at > timedelta(seconds=settings.idle_timeout):
        return "idle"
    return None


def _touch(row: ConsoleSession, now: datetime, settings: ConsoleSettings) -> None:
    """Write the session's last use, unless another request of it just did."""
    db.session.execute(
        db.update(ConsoleSession)
        .where(ConsoleSession.id == row.id)
        .where(ConsoleSession.last_seen_at <= now - _seen_resolution(settings))
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(row, "last_seen_at", now)
    db.session.commit()


def current_session() -> ConsoleSession | None:
    """The request's session row while it counts, else None."""
    return _resolve().row


def session_actor() -> Actor | None:
    """The staff member whose session the request's cookie names, while it counts."""
    return _resolve().actor


def session_key_digest() -> str | None:
    """What the rate limits count a signed-in session as: its key (the API's digest of it)."""
    try:
        key_hash = _resolve().key_hash
    except Exception:  # the rate limits must not fail a request the database cannot answer
        db.session.rollback()
        return None
    return key_hash[:_DIGEST_CHARS] if key_hash else None


def active_sessions(staff_id: int) -> list[ConsoleSession]:
    """The staff member's sessions that still count, most recently used first."""
    settings = _settings()
    now = utcnow()
    rows = (
        db.session.execute(
            db.select(ConsoleSession)
            .join(ApiKey, ApiKey.id == ConsoleSession.key_id)
            .where(ConsoleSession.staff_id == staff_id)
            .where(ConsoleSession.ended_at.is_(None))
            .where(ApiKey.revoked_at.is_(None))
            .where(ConsoleSession.created_at >= now - timedelta(seconds=settings.session_lifetime))
            .where(ConsoleSession.last_seen_at >= now - timedelta(seconds=settings.idle_timeout))
            .order_by(ConsoleSession.last_seen_at.desc(), ConsoleSession.id.desc())
        )
        .scalars()
        .all()
    )
    return list(rows)
