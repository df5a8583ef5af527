"""Liveness and readiness: ``/healthz`` (the process answers) and ``/readyz`` (it can work);
``/`` and ``/api/v1`` point to what a newcomer looks for (console, API, docs).

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


class PointersSchema(ma.Schema):
    service = ma.fields.String(required=True, metadata={"example": "partnerwatch tickets"})
    console = ma.fields.String(required=True, metadata={"example": "/console/"})
    api = ma.fields.String(required=True, metadata={"example": "/api/v1"})
    docs = ma.fields.String(required=True, metadata={"example": "/api/docs"})
    openapi = ma.fields.String(required=True, metadata={"example": "/api/openapi.json"})


POINTERS = {
    "service": "partnerwatch tickets",
    "console": "/console/",
    "api": "/api/v1",
    "docs": "/api/docs",
    "openapi": "/api/openapi.json",
}


@bp.route("/")
@bp.doc(security=[], summary="Where things are: the console, the API and its documentation")
@bp.response(200, PointersSchema)
def index() -> dict[str, str]:
    return POINTERS


@bp.route("/api/v1")
@bp.doc(security=[], summary="The API's root: where its documentation is")
@bp.response(200, PointersSchema)
def api_root() -> dict[str, str]:
    return POINTERS
