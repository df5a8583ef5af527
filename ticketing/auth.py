"""API key authentication for partners and staff.

A key looks like ``pw_<prefix>_<secret>``: ``prefix`` is 12 hex digits that
identify the key without revealing it (it appears in logs and in the CLI),
``secret`` is 32 random bytes. The key is shown once, when it is issued; the
database keeps only the prefix and the SHA-256 of the whole key (a fast hash
is right here: the secret is random, not a password, so there is nothing to
guess). Lookup is by prefix, then the hashes are compared in constant time.

Clients send the key in the ``X-API-Key`` header. In a request:

    actor = current_actor()         # Actor(kind="partner", id=3, name="Acme", role=None)
    if actor is None: ...           # no key, or a bad one

Blueprints call :func:`require_partner` / :func:`require_staff`, which answer
401 (no or bad key) or 403 (the wrong kind of caller).

Failures send ``signals.auth_failed(app, key_prefix=..., reason=...)`` with
``reason`` one of ``malformed``, ``unknown``, ``revoked``, ``inactive`` (the
partner is suspended or the staff member deactivated) and, only when an
endpoint that needs a key is called without one, ``missing``.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, g, has_request_context, request

from . import signals
from .db import db
from .errors import ApiError
from .models import ApiKey, Partner, Staff, utcnow

HEADER = "X-API-Key"
_KEY = re.compile(r"^pw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_PREFIX = re.compile(r"^pw_([0-9a-f]{12})_")
#: ``last_used_at`` is written at most this often per key, to spare the database.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class Actor:
    """Who is calling: a partner or a staff member.

    ``role`` is the staff member's ``agent`` or ``admin``, None for partners;
    ``key_id``/``key_prefix`` name the API key used.
    """

    kind: str
    id: int
    name: str
    role: str | None = None
    key_id: int | None = None
    key_prefix: str | None = None

    @property
    def is_partner(self) -> bool:
        return self.kind == "partner"

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"

    @property
    def is_admin(self) -> bool:
        return self.kind == "staff" and self.role == "admin"


# ------------------------------------------------------------------ issuing keys

def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def issue_key(*, partner: Partner | None = None, staff: Staff | None = None,
              name: str | None = None) -> tuple[ApiKey, str]:
    """Create a key for ``partner`` or ``staff``; returns (row, raw key). Caller commits.

    The raw key exists only in the return value: show it once, never store it.
    """
    if (partner is None) == (staff is None):
        raise ValueError("a key belongs to exactly one partner or one staff member")
    prefix = secrets.token_hex(6)
    raw = f"pw_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(prefix=prefix, key_hash=hash_key(raw), name=name,
                 partner_id=partner.id if partner else None,
                 staff_id=staff.id if staff else None)
    db.session.add(key)
    db.session.flush()
    return key, raw


def key_prefix(raw_key: str | None) -> str | None:
    """The non-secret prefix of something that looks like one of our keys, else None."""
    match = _PREFIX.match(raw_key or "")
    return match.group(1) if match else None


# ------------------------------------------------------------------ authenticating

def _failed(prefix: str | None, reason: str) -> None:
    signals.auth_failed.send(current_app._get_current_object(), key_prefix=prefix,
                             reason=reason)


def authenticate(raw_key: str | None) -> Actor | None:
    """The :class:`Actor` owning ``raw_key``, or None (after sending ``auth_failed``).

    Records the key's last use. Writes go to ``db.session``; the caller
    commits (:func:`current_actor` does).
    """
    if not raw_key:
        return None
    match = _KEY.match(raw_key)
    if not match:
        _failed(key_prefix(raw_key), "malformed")
        return None
    prefix = match.group(1)
    key = db.session.execute(db.select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    if key is None or not hmac.compare_digest(key.key_hash, hash_key(raw_key)):
        _failed(prefix, "unknown")
        return None
    if key.revoked_at is not None:
        _failed(prefix, "revoked")
        return None
    if key.partner is not None:
        if key.partner.status != "active":
            _failed(prefix, "inactive")
            return None
        actor = Actor("partner", key.partner.id, key.partner.name, None, key.id, prefix)
    else:
        assert key.staff is not None
        if not key.staff.active:
            _failed(prefix, "inactive")
            return None
        actor = Actor("staff", key.staff.id, key.staff.name, key.staff.role, key.id, prefix)
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
    return actor


def current_actor() -> Actor | None:
    """The caller of the current request, or None; resolved once per request.

    The first call reads ``X-API-Key``, authenticates it and commits what that
    wrote (last use, and whatever ``auth_failed`` receivers added), so call it
    before changing anything, as the request hooks do.
    """
    if not has_request_context():
        return None
    if "ticketing_actor" not in g:
        g.ticketing_actor = authenticate(request.headers.get(HEADER))
        db.session.commit()
    return g.ticketing_actor


def _require(kind: str) -> Actor:
    actor = current_actor()
    if actor is None:
        raw = request.headers.get(HEADER)
        if not raw:
            _failed(None, "missing")
            db.session.commit()
            raise ApiError(401, "unauthorized", f"an API key is required in the {HEADER} header")
        raise ApiError(401, "unauthorized", "the API key is not valid")
    if actor.kind != kind:
        raise ApiError(403, "forbidden", f"this endpoint is for {kind} API keys")
    return actor


def require_partner() -> Actor:
    """The calling partner; 401 without a valid key, 403 for a staff key."""
    return _require("partner")


def require_staff() -> Actor:
    """The calling staff member; 401 without a valid key, 403 for a partner key."""
    return _require("staff")
