"""Signing in to the console with a staff API key, and who a session belongs to.

The session cookie holds the key's id and the first 32 hex digits of its
stored SHA-256, never the key: enough to find the key again and to check it
is the same one, not enough to call the API with. Each request looks the key
up (:func:`ticketing.auth.key_owner`: revoked, suspended, deactivated are
refused), so signing a key out everywhere is revoking it.

    actor = sign_in(raw_key)      # Actor, or raises SignInRefused (reason for the page)
    session_actor()               # the signed-in staff member of this request, or None
    sign_out()
"""

from __future__ import annotations

import hmac

from flask import request, session

from ticketing import auth
from ticketing.auth import Actor
from ticketing.db import db
from ticketing.models import ApiKey

SESSION_KEY = "staff_key"
_HASH_CHARS = 32


class SignInRefused(Exception):
    """A sign-in that did not work; ``message`` is for the page, ``status`` for the answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def sign_in(raw_key: str) -> Actor:
    """Check ``raw_key`` as the API does (a failure counts as a failed key check) and start
    a session for its staff member. Partner keys are refused."""
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
    session.clear()  # a new session: nothing from before the sign-in carries over
    session.permanent = True
    session[SESSION_KEY] = {"id": key.id, "h": key.key_hash[:_HASH_CHARS]}
    return actor


def sign_out() -> None:
    session.clear()


def session_actor() -> Actor | None:
    """The staff member whose key the request's session names, while that key is valid."""
    if not request.path.startswith("/console/"):
        return None  # a session signs in to the console, not to the API
    held = session.get(SESSION_KEY)
    if (
        not isinstance(held, dict)
        or not isinstance(held.get("id"), int)
        or not isinstance(held.get("h"), str)
    ):
        return None
    key = db.session.get(ApiKey, held["id"])
    if key is None or not hmac.compare_digest(key.key_hash[:_HASH_CHARS], held["h"]):
        return None
    actor, _reason = auth.key_owner(key)
    if actor is None or not actor.is_staff:
        return None
    auth.record_use(key)
    return actor


def session_key_digest() -> str | None:
    """What the rate limits count a signed-in session as: its key (the API's digest of it)."""
    held = session.get(SESSION_KEY) if request.path.startswith("/console/") else None
    if isinstance(held, dict) and isinstance(digest := held.get("h"), str):
        return digest[:24]
    return None
