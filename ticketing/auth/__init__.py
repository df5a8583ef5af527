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

Requests do not ask the database about a key they have just seen: an accepted
key is trusted for ``api.key_cache_ttl`` seconds (default 5 s) by the process
that checked it (:mod:`ticketing.auth.key_cache`). A revoked key, a suspended partner
or a deactivated staff member is refused at once by the process that made the
change, and by every other process within that time. :func:`authenticate`
itself always asks the database (the live feed re-checks its clients' keys
with it). ``last_used_at`` is written at most once a minute per key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, g, has_request_context, request

from ticketing import signals
from ticketing.auth.key_cache import EXTENSION_KEY, LAST_USE_OPTION, Entry, KeyCache
from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.models import ApiKey, Partner, Staff, utcnow

HEADER = "X-API-Key"
_KEY = re.compile(r"^pw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_PREFIX = re.compile(r"^pw_([0-9a-f]{12})_")
#: ``app.extensions`` key of a callable giving the Actor of the request's session, or None.
SESSION_LOADER = "ticketing_session_actor"
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


def issue_key(
    *, partner: Partner | None = None, staff: Staff | None = None, name: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key for ``partner`` or ``staff``; returns (row, raw key). Caller commits.

    The raw key exists only in the return value: show it once, never store it.
    """
    if (partner is None) == (staff is None):
        raise ValueError("a key belongs to exactly one partner or one staff member")
    prefix = secrets.token_hex(6)
    raw = f"pw_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        prefix=prefix,
        key_hash=hash_key(raw),
        name=name,
        partner_id=partner.id if partner else None,
        staff_id=staff.id if staff else None,
    )
    db.session.add(key)
    db.session.flush()
    return key, raw


def key_prefix(raw_key: str | None) -> str | None:
    """The non-secret prefix of something that looks like one of our keys, else None."""
    match = _PREFIX.match(raw_key or "")
    return match.group(1) if match else None


# ------------------------------------------------------------------ authenticating


def _failed(prefix: str | None, reason: str) -> None:
    signals.auth_failed.send(signals.sender(), key_prefix=prefix, reason=reason)


def key_cache() -> KeyCache | None:
    """The current app's cache of accepted keys (None when ``api.key_cache_ttl`` is 0)."""
    return current_app.extensions.get(EXTENSION_KEY)


def authenticate(raw_key: str | None) -> Actor | None:
    """The :class:`Actor` owning ``raw_key``, or None (after sending ``auth_failed``).

    Always checks the key against the database, and leaves the answer in the
    process's key cache (an accepted key is cached, a refused one forgotten).
    Records the key's last use, at most once a minute. Writes go to
    ``db.session``; the caller commits (:func:`current_actor` does).
    """
    if not raw_key:
        return None
    match = _KEY.match(raw_key)
    if not match:
        _failed(key_prefix(raw_key), "malformed")
        return None
    prefix = match.group(1)
    digest = hash_key(raw_key)
    cache = key_cache()
    generation = cache.generation if cache is not None else None
    key = db.session.execute(db.select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        _refused(cache, digest, prefix, "unknown")
        return None
    actor, reason = key_owner(key)
    if actor is None:
        _refused(cache, digest, prefix, reason or "inactive")
        return None
    record_use(key)
    if cache is not None:
        cache.put(digest, actor, key.last_used_at, generation)
    return actor


def key_owner(key: ApiKey) -> tuple[Actor | None, str | None]:
    """(the :class:`Actor` of a key, None) while the key may be used, else (None, reason):
    ``revoked``, or ``inactive`` (a suspended partner, a deactivated staff member)."""
    if key.revoked_at is not None:
        return None, "revoked"
    if key.partner_id is not None:
        partner = key.partner
        assert partner is not None
        if partner.status != "active":
            return None, "inactive"
        return Actor("partner", partner.id, partner.name, None, key.id, key.prefix), None
    staff = key.staff
    assert staff is not None
    if not staff.active:
        return None, "inactive"
    return Actor("staff", staff.id, staff.name, staff.role, key.id, key.prefix), None


def record_use(key: ApiKey) -> None:
    """Note the key's last use, at most once a minute (in ``db.session``; the caller commits)."""
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now


def _refused(cache: KeyCache | None, digest: str, prefix: str, reason: str) -> None:
    if cache is not None:
        cache.discard(digest)
    _failed(prefix, reason)


def _cached_actor(raw_key: str, cache: KeyCache) -> Actor | None:
    """The actor of a key this process accepted within the TTL, or None.

    Writes the key's last use when the one recorded is a minute old (in
    ``db.session``: the caller commits).
    """
    entry = cache.get(hash_key(raw_key))
    if entry is None:
        return None
    now = utcnow()
    if entry.last_used_at is None or now - entry.last_used_at >= LAST_USED_RESOLUTION:
        _record_last_use(entry, now)
    return entry.actor


def _record_last_use(entry: Entry, now: datetime) -> None:
    entry.last_used_at = now  # first: the other threads of this process need not write it too
    db.session.execute(
        db.update(ApiKey)
        .where(ApiKey.id == entry.actor.key_id)
        .where(
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at <= now - LAST_USED_RESOLUTION)
        )
        .values(last_used_at=now)
        .execution_options(**{LAST_USE_OPTION: True, "synchronize_session": False})
    )


def current_actor() -> Actor | None:
    """The caller of the current request, or None; resolved once per request.

    The first call reads ``X-API-Key`` and, unless this process accepted the
    key within the last ``api.key_cache_ttl`` seconds, authenticates it.
    A request without the header may carry a signed-in session instead (the
    support console registers its loader as ``app.extensions[SESSION_LOADER]``).
    Whatever that wrote (the key's last use, and whatever ``auth_failed``
    receivers added) is committed at once, so call it before changing
    anything, as the request hooks do. A cached key usually writes nothing
    and costs no database round trip.
    """
    if not has_request_context():
        return None
    if "ticketing_actor" not in g:
        raw_key = request.headers.get(HEADER)
        cache = key_cache() if raw_key else None
        actor = _cached_actor(raw_key, cache) if cache is not None and raw_key else None
        if actor is None and raw_key is None and SESSION_LOADER in current_app.extensions:
            actor = current_app.extensions[SESSION_LOADER]()
        elif actor is None:
            actor = authenticate(raw_key)
        session = db.session()
        if session.in_transaction():
            session.commit()
        g.ticketing_actor = actor
    found: Actor | None = g.ticketing_actor
    return found


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


def bearer_token_matches(token: str) -> bool:
    """Whether the request's ``Authorization: Bearer ...`` header carries ``token``
    (compared in constant time): the check of the service's token-protected routes
    (the Alertmanager receiver, ``/metrics`` when it has a token)."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def authorize_alertmanager(token: str | None, setting: str) -> None:
    """The check of an Alertmanager receiver's request: 404 while its token is not
    configured (``setting`` names where), 401 without the token, 415 unless JSON."""
    if token is None:
        raise ApiError(404, "not_found", f"the Alertmanager receiver is not configured ({setting})")
    if not bearer_token_matches(token):
        raise ApiError(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the notification as application/json")
