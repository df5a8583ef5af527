"""Who may see a console page, the headers every answer carries, and the error pages.

Every request but the sign-in page and static files needs a signed-in staff
member (else: back to the sign-in page, or 401 JSON for the poller); every
POST needs its CSRF token. Refusals (an ``ApiError``, an HTTP error, the
security monitor's JSON 429) are answered as a page, or as JSON on
``/console/live/...``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from flask import abort, current_app, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from ticketing.auth import Actor, current_actor
from ticketing.console import csrf
from ticketing.console.blueprint import CSP, PUBLIC, bp
from ticketing.db import autocommit_reads, db
from ticketing.errors import ApiError


@bp.before_request
def _guard() -> ResponseReturnValue | None:
    if request.endpoint == "console.static":
        return None
    if request.method == "POST":
        csrf.protect()
    if request.endpoint in PUBLIC:
        return None
    actor = current_actor()
    if actor is None or not actor.is_staff:
        if wants_json():
            return jsonify(
                error={"code": "unauthorized", "message": "sign in again", "details": {}}
            ), 401
        return redirect(url_for("console.login", next=local_path(request_path())))
    if request.method == "GET":
        autocommit_reads()
    return None


@bp.after_request
def _headers(response: Response) -> Response:
    if request.endpoint != "console.static":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # The security monitor answers refusals (429, a blocked URL) as JSON: show a page.
    if response.status_code >= 400 and response.mimetype == "application/json" and not wants_json():
        error = (response.get_json(silent=True) or {}).get("error") or {}
        page = error_page(response.status_code, error.get("message") or "refused")
        page.headers.extend(
            (k, v)
            for k, v in response.headers.items()
            if k.startswith("X-RateLimit") or k == "Retry-After"
        )
        return page
    return response


def wants_json() -> bool:
    """Whether the request is the poller's (answered JSON, errors included)."""
    return request.endpoint is not None and request.endpoint.startswith("console.live")


def error_page(status: int, message: str) -> Response:
    response = current_app.make_response(
        (
            render_template(
                "console/error.html", status=status, message=message, actor=signed_in()
            ),
            status,
        )
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def signed_in() -> Actor | None:
    """The signed-in staff member, or None (also when the database cannot say)."""
    try:
        actor = current_actor()
    except Exception:  # an error page must render even when the database is down
        return None
    return actor if actor is not None and actor.is_staff else None


#: The longest ``next`` kept; longer ones are ignored.
MAX_NEXT = 2000
# A path under /console/ and an optional query, in printable ASCII without spaces,
# quotes, angle brackets or backslashes (percent-encoding is how anything else travels).
_LOCAL_PATH = re.compile(
    r"/console(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*)?(?:\?[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*)?"
)
_DOT_SEGMENT = re.compile(r"(?:^|/)\.{1,2}(?:/|$)")


def local_path(target: object) -> str | None:
    """``target`` if it is a plain path inside the console (no open redirects), else None.

    Total: whatever ``target`` is (control characters, CR/LF, backslashes,
    ``//host``, absolute URLs, ``javascript:``, non-ASCII, any length), the
    answer is a safe path or None, never an exception.
    """
    if not isinstance(target, str) or not target or len(target) > MAX_NEXT:
        return None
    if not _LOCAL_PATH.fullmatch(target):
        return None
    path, _, query = target.partition("?")
    decoded = unquote(path)
    if (
        any(not ("!" <= c <= "~") for c in decoded)  # encoded controls, spaces, non-ASCII
        or "\\" in decoded
        or "//" in decoded
        or _DOT_SEGMENT.search(decoded)
        or not (decoded == "/console" or decoded.startswith("/console/"))
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in unquote(query))
    ):
        return None
    return target.rstrip("?")


def request_path() -> str:
    """The current request's path and query as ``local_path`` accepts them (encoded)."""
    path = quote(request.path, safe="/-._~!$&'()*+,;=:@")
    query = request.query_string.decode("latin-1")
    return path + ("?" + query if query else "")


@bp.errorhandler(CSRFError)
def _csrf_refused(error: CSRFError) -> Response:
    db.session.rollback()
    return error_page(
        400,
        "This form was not sent from an open console page (its security "
        "token is missing or no longer valid). Go back, reload the page "
        "and try again.",
    )


@bp.errorhandler(ApiError)
def _api_error(error: ApiError) -> ResponseReturnValue:
    db.session.rollback()
    if wants_json():
        return jsonify(
            error={"code": error.code, "message": error.message, "details": error.details}
        ), error.status
    return error_page(error.status, error.message[:1].upper() + error.message[1:] + ".")


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> ResponseReturnValue:
    db.session.rollback()
    if wants_json():
        return jsonify(
            error={"code": "error", "message": error.description or error.name, "details": {}}
        ), error.code or 500
    return error_page(error.code or 500, error.description or error.name)


@bp.route("/<path:anything>", methods=["GET", "POST"])
def not_found(anything: str) -> ResponseReturnValue:
    abort(404, "There is no such page in the console.")
