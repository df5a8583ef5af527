"""What the API blueprints share: a parser with a ``multipart`` location, the blueprint class,
the authentication of every request (:func:`authenticate_requests`).

``@bp.arguments(Schema, location="multipart")`` reads a multipart/form-data
body's form fields and files together, so one schema validates (and documents)
an upload with its fields. Views that take uploads are marked ``@accepts_upload``
(right under ``@bp.route``), which lets them receive bodies up to the
attachment size limit instead of the small JSON limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import flask
import flask_smorest
import marshmallow as ma
from flask import current_app, request
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict

from ticketing.api.body import nesting_is_a_decoding_error
from ticketing.api.openapi import ErrorSchema
from ticketing.db import autocommit_reads
from ticketing.errors import ApiError


class ApiParser(FlaskParser):
    """webargs' Flask parser, refusing unknown query parameters and multipart fields too.

    (A misspelt filter such as ``?staus=open`` must not silently list everything.)
    """

    __location_map__ = dict(multipart="load_multipart", **FlaskParser.__location_map__)
    DEFAULT_UNKNOWN_BY_LOCATION = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
        "multipart": ma.RAISE,
    }

    def _raw_load_json(self, req: flask.Request) -> Any:
        with nesting_is_a_decoding_error():
            return super()._raw_load_json(req)

    def load_multipart(self, req: flask.Request, schema: ma.Schema) -> Any:
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)


#: A view function, as the decorators below take and give it back.
View = TypeVar("View", bound=Callable[..., Any])


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # flask_smorest is untyped
    ARGUMENTS_PARSER = ApiParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
    }

    if TYPE_CHECKING:
        # The signatures of flask-smorest's decorators used here (it has no type information).

        def route(self, rule: str, **options: Any) -> Callable[[View], View]: ...

        def response(
            self, status_code: int, schema: Any = None, **kwargs: Any
        ) -> Callable[[View], View]: ...

        def alt_response(
            self, status_code: int, response: Any = None, **kwargs: Any
        ) -> Callable[[View], View]: ...

        @staticmethod
        def doc(**kwargs: Any) -> Callable[[View], View]: ...

        def before_request(self, f: View) -> View: ...

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Callable[[View], View]:
        """flask-smorest's ``arguments``, with a schema class made an instance once.

        (webargs would build a new instance of a schema class for every request.)
        """
        if isinstance(schema, type):
            schema = schema()
        decorator: Callable[[View], View] = super().arguments(schema, *args, **kwargs)
        return decorator

    def error(self, status: int, description: str) -> Callable[[View], View]:
        """Document an error response (the common error shape) of a view."""
        return self.alt_response(status, schema=ErrorSchema, description=description)


def accepts_upload(view: View) -> View:
    view.accepts_upload = True  # type: ignore[attr-defined]  # a mark on the function object
    return view


def max_body_bytes(limit: Callable[[], int]) -> Callable[[View], View]:
    """Mark a view whose JSON body may be larger than ``api.max_json_bytes``: ``limit()``
    (called per request, in the app context) is its limit instead."""

    def mark(view: View) -> View:
        view.max_body_bytes = limit  # type: ignore[attr-defined]  # a mark on the function object
        return view

    return mark


#: Methods whose request body, when there is one, must be JSON (and valid JSON).
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def require_json_body() -> None:
    """The one check of every JSON route's body, whether the view reads one or not
    (``close``, ``reopen``, ``ping`` take none): a body that is not ``application/json``
    is 415, a non-empty body that is not valid JSON is 400 ``invalid_json``. Upload
    endpoints (:func:`accepts_upload`) take multipart bodies instead."""
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "accepts_upload", False) or request.method not in BODY_METHODS:
        return
    has_body = bool(request.content_length) or (
        "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )
    if not has_body:
        return
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the request body as application/json")
    data = request.get_data(cache=True)
    if not data:  # a chunked body may still turn out empty
        return
    try:
        with nesting_is_a_decoding_error():
            json.loads(data)
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None


def authenticate_requests(bp: Blueprint, require: Callable[[], object]) -> None:
    """Before each view of ``bp``: ``require()`` the caller (``auth.require_partner``,
    ``require_staff``) before the body is even parsed, so 401/403 come first; then a JSON
    body (:func:`require_json_body`); a GET only reads (``db.autocommit_reads``)."""

    @bp.before_request
    def _authenticate() -> None:
        require()
        require_json_body()
        if request.method == "GET":  # reads only
            autocommit_reads()
