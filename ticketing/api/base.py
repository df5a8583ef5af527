"""What the API blueprints share: a parser with a ``multipart`` location, the blueprint class.

``@bp.arguments(Schema, location="multipart")`` reads a multipart/form-data
body's form fields and files together, so one schema validates (and documents)
an upload with its fields. Views that take uploads are marked ``@accepts_upload``
(right under ``@bp.route``), which lets them receive bodies up to the
attachment size limit instead of the small JSON limit.
"""

from __future__ import annotations

import json

import flask_smorest
import marshmallow as ma
from flask import current_app, request
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict

from ticketing.api.openapi import ErrorSchema
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

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            raise json.JSONDecodeError("JSON nested too deeply", "<request body>", 0) from None

    def load_multipart(self, req, schema):
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ApiParser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
    }

    def arguments(self, schema, *args, **kwargs):
        """flask-smorest's ``arguments``, with a schema class made an instance once.

        (webargs would build a new instance of a schema class for every request.)
        """
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)

    def error(self, status: int, description: str):
        """Document an error response (the common error shape) of a view."""
        return self.alt_response(status, schema=ErrorSchema, description=description)


def accepts_upload(view):
    view.accepts_upload = True
    return view


def require_json_body() -> None:
    """415 for a request body that is not JSON, except on upload endpoints."""
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "accepts_upload", False) or request.method not in ("POST", "PUT", "PATCH"):
        return
    has_body = bool(request.content_length) or (
        "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    )
    if has_body and not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the request body as application/json")
