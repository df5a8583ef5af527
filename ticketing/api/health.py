"""Liveness and readiness: ``/healthz`` (the process answers) and ``/readyz`` (it can work).

``/readyz`` runs ``SELECT 1`` on the database and answers 503 with the usual
error shape when that fails, so a load balancer stops sending traffic to a
worker that cannot reach its database.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from sqlalchemy import text

from ticketing.api.base import Blueprint
from ticketing.api.openapi import ErrorSchema
from ticketing.db import db
from ticketing.errors import ApiError

bp = Blueprint("health", __name__, description="Liveness and readiness probes")


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})
    checks = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


@bp.route("/healthz")
@bp.doc(security=[], summary="Liveness: the process answers")
@bp.response(200, HealthSchema)
def healthz() -> dict[str, Any]:
    return {"status": "ok", "checks": {}}


@bp.route("/readyz")
@bp.doc(security=[], summary="Readiness: the database answers")
@bp.response(200, HealthSchema)
@bp.alt_response(503, schema=ErrorSchema, description="The database does not answer")
def readyz() -> dict[str, Any]:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not ready"
        raise ApiError(
            503,
            "unavailable",
            "the database does not answer",
            details={"checks": {"database": type(exc).__name__}},
        ) from None
    return {"status": "ok", "checks": {"database": "ok"}}
