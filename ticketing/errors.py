"""API errors: one JSON shape for every failure, and the handlers that produce it.

Every error the service answers looks like this, whatever raised it (our own
code, request validation, routing, an oversize body, an unexpected bug):

    {"error": {"code": "not_found", "message": "ticket not found", "details": {}}}

Code raises :class:`ApiError` (or one of the helpers) and never builds error
responses by hand:

    raise ApiError(409, "invalid_transition", "cannot move a closed ticket to resolved",
                   details={"allowed": ["open"]})

Every handler first rolls the database session back, so a request that fails
leaves nothing half-written. Anything that must survive a failing request (a
security event, say) has to be committed before the error is raised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError

from ticketing.db import db

log = logging.getLogger(__name__)

#: Stable ``error.code`` for each HTTP status the service may answer.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    422: "validation_error",
    429: "rate_limited",
    431: "request_header_fields_too_large",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
}


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> bytes:
    """The error shape as bytes, for answers written outside Flask (gunicorn's own)."""
    body = {"error": {"code": code, "message": message, "details": dict(details or {})}}
    return json.dumps(body, separators=(",", ":")).encode()


class ApiError(Exception):
    """An error answered as JSON with ``status``, a stable ``code`` and a human ``message``."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message or self.code.replace("_", " ")
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        super().__init__(f"{status} {self.code}: {self.message}")


def not_found(what: str) -> ApiError:
    """The 404 for ``what`` ("ticket", "attachment"): the same whether absent or not yours."""
    return ApiError(404, "not_found", f"{what} not found")


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    response = jsonify(
        {"error": {"code": code, "message": message, "details": dict(details or {})}}
    )
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # a dead connection must not hide the original error
        log.exception("rollback after an error failed")


def handle_api_error(error: ApiError) -> Response:
    _rollback()
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def handle_http_exception(error: HTTPException) -> Response:
    """Werkzeug/Flask HTTP errors, and webargs' validation errors, in our shape.

    webargs (through flask-smorest) raises 422 with ``error.data["messages"]``
    holding the validation messages per location (``json``, ``query``, ...), and
    400 with ``{"json": ["Invalid JSON body."]}`` for a body that is not JSON.
    """
    _rollback()
    status = error.code or 500
    code = CODES.get(status, "error")
    message = error.description or error.name
    details: dict[str, Any] = {}
    data = getattr(error, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if status == 422 and messages is not None:
        message = "the request is not valid"
        details = {"fields": messages}
    elif status == 400 and isinstance(
        getattr(error, "exc", None), (json.JSONDecodeError, UnicodeDecodeError)
    ):
        code, message = "invalid_json", "the request body is not valid JSON"
    elif status == 400 and messages:
        details = {"fields": messages}
    if status == 413:
        message = "the request body is too large"
        limit = getattr(error, "limit", None)
        if limit:
            details = {"max_bytes": limit}
    if isinstance(error, InternalServerError) or status >= 500:
        original = getattr(error, "original_exception", None)
        if original is not None:
            log.error("unhandled error", exc_info=original)
        if status == 500:
            message = "internal error"
    headers = {
        name: value
        for name, value in error.get_headers()
        if name.lower() not in ("content-type", "content-length")
    }
    headers.update(data.get("headers") or {})
    return error_response(status, code, message, details, headers)


#: Seconds a client is asked to wait when the database is unavailable.
DATABASE_RETRY_AFTER = 1


def handle_database_unavailable(error: Exception) -> Response:
    """The database went away (a restart, a failover, a dropped connection): 503, not 500.

    Nothing was committed by this request (its transaction failed), so the
    client may retry; ``Retry-After`` says when. The pool has already dropped
    the broken connection, and the next request connects afresh.
    """
    _rollback()
    orig = getattr(error, "orig", None) or error
    log.warning("database unavailable: %s: %s", type(orig).__name__, str(orig).strip()[:200])
    return error_response(
        503,
        "unavailable",
        "the database is unavailable; retry shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


def register_error_handlers(app: Flask) -> None:
    """Answer every error as JSON. (flask-smorest's Api routes HTTPException here too.)"""
    app.register_error_handler(ApiError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    # What the driver raises when the server is down or the connection broke.
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(InterfaceError, handle_database_unavailable)


def oversize(limit: int) -> ApiError:
    return ApiError(
        413, "payload_too_large", "the request body is too large", details={"max_bytes": limit}
    )
