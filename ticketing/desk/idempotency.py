"""``Idempotency-Key`` for ticket creation: retrying a request never files a ticket twice.

A partner may send ``Idempotency-Key: <up to 255 printable ASCII characters>``
with ``POST /api/v1/tickets``. The key is remembered with a hash of the
request body and the ticket created, for ``api.idempotency_ttl`` (1 day):

- the same key with the same body answers the same ticket again (200, header
  ``Idempotent-Replayed: true``) and creates nothing;
- the same key with a different body is refused (422 ``idempotency_key_reused``);
- two requests racing with the same key create one ticket: the loser's
  transaction fails on the unique (partner, key) constraint and is answered
  like a replay.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from typing import Any

from ticketing.db import db
from ticketing.errors import ApiError
from ticketing.models import IdempotencyKey

HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")


def request_hash(body: Any) -> str:
    """Hash of a JSON body, independent of key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def find(partner_id: int, key: str, now: datetime, ttl: timedelta) -> IdempotencyKey | None:
    """The live record of ``key``. The partner's expired keys are forgotten first."""
    db.session.execute(
        db.delete(IdempotencyKey).where(
            IdempotencyKey.partner_id == partner_id, IdempotencyKey.created_at < now - ttl
        )
    )
    return db.session.execute(
        db.select(IdempotencyKey).where(
            IdempotencyKey.partner_id == partner_id, IdempotencyKey.key == key
        )
    ).scalar_one_or_none()


def check_replay(record: IdempotencyKey, body_hash: str) -> int:
    """The ticket id to answer again, or 422 when the key came with another body."""
    if record.request_hash != body_hash:
        raise ApiError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was already used with a different request body",
            details={"header": HEADER},
        )
    return record.ticket_id


def remember(partner_id: int, key: str, body_hash: str, ticket_id: int, now: datetime) -> None:
    db.session.add(
        IdempotencyKey(
            partner_id=partner_id,
            key=key,
            request_hash=body_hash,
            ticket_id=ticket_id,
            created_at=now,
        )
    )
