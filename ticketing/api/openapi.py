"""The OpenAPI document, generated from the code by flask-smorest.

Views are declared on :class:`flask_smorest.Blueprint` objects with marshmallow
schemas; the same schemas validate request bodies and query strings and
document them, so the document cannot drift from what the service accepts.
It is served at ``/api/openapi.json`` (Swagger UI at ``/api/docs``).

Routes that are not smorest views (``/metrics``, the document itself, and any
an extension adds) are described with :func:`document_route`, so the
document covers every route of the app:

    document_route(app, "/ws/monitoring", "get", summary="Live feed (WebSocket)",
                   tag="live", responses={"101": {"description": "Switching Protocols"}})
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_instance
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from flask import Flask, Response
from flask_smorest import Api
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter, Map, ValidationError

from ticketing.db import MAX_ID
from ticketing.errors import handle_http_exception


class IdConverter(IntegerConverter):
    """``<id:ticket_id>``: a positive 32-bit integer in ASCII digits; anything else (other
    scripts' digits such as ``１２`` or ``١٢``, which ``int()`` would read) is an ordinary 404."""

    #: ASCII digits only (werkzeug's ``\d+`` matches every script's digits), at most 10.
    regex = r"[0-9]{1,10}"

    def __init__(self, map: Map, **kwargs: Any) -> None:
        super().__init__(map, min=1, max=MAX_ID)

    def to_python(self, value: str) -> Any:
        if not (value.isascii() and value.isdigit()):
            raise ValidationError()
        return super().to_python(value)


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(
        required=True, metadata={"description": "stable error code", "example": "not_found"}
    )
    message = ma.fields.String(required=True, metadata={"description": "human-readable message"})
    details = ma.fields.Dict(
        required=True,
        metadata={
            "description": "more about the error; validation errors list problems per field "
            "under `fields`"
        },
    )


class ErrorSchema(ma.Schema):
    """The shape of every error response."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


class SchemaConverter(OpenAPIConverter):
    """apispec's converter, adding a schema's ``json_schema_extra`` (a class attribute,
    e.g. ``{"minProperties": 1}``) to its OpenAPI object: rules between fields that
    marshmallow checks in a ``validates_schema`` are documented too."""

    def schema2jsonschema(self, schema: Any) -> dict[str, Any]:
        jsonschema: dict[str, Any] = super().schema2jsonschema(schema)  # type: ignore[no-untyped-call]  # apispec's converter is untyped
        jsonschema.update(getattr(resolve_schema_instance(schema), "json_schema_extra", {}))
        return jsonschema


class SchemaPlugin(MarshmallowPlugin):
    Converter = SchemaConverter


class TicketingApi(Api):  # type: ignore[misc]  # flask_smorest is untyped
    """flask-smorest's Api, answering errors in the service's own shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Response:
        return handle_http_exception(error)


API_CONFIG = {
    "API_TITLE": "partnerwatch tickets",
    "API_VERSION": "1.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    "API_SPEC_OPTIONS": {
        "info": {
            "description": "Partners file and follow support tickets; support staff "
            "triage and answer them. Authenticate with an API key in "
            "the `X-API-Key` header."
        },
        "security": [{"ApiKey": []}],
    },
}


def init_api(app: Flask) -> TicketingApi:
    for key, value in API_CONFIG.items():
        app.config.setdefault(key, value)
    app.url_map.converters["id"] = IdConverter
    api = TicketingApi(app, spec_kwargs={"marshmallow_plugin": SchemaPlugin()})
    api.register_converter(
        IdConverter,
        lambda converter: {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    )
    api.spec.components.security_scheme(
        "ApiKey",
        {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "pw_<prefix>_<secret>, issued by `partnerwatch-ticketing create-key`",
        },
    )
    app.extensions["ticketing_api"] = api
    document_route(
        app,
        "/api/openapi.json",
        "get",
        summary="This OpenAPI document",
        tag="docs",
        public=True,
        responses={
            "200": {
                "description": "OpenAPI 3 document",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    from ticketing.api import docs_page  # Swagger UI, served from a pinned package

    app.register_blueprint(docs_page.bp)
    document_route(
        app,
        "/api/docs",
        "get",
        summary="Swagger UI for this document",
        tag="docs",
        public=True,
        responses={
            "200": {
                "description": "HTML page",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        },
    )
    return api


def document_route(
    app: Flask,
    rule: str,
    method: str,
    *,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    public: bool = False,
    description: str | None = None,
) -> None:
    """Describe a route that is not a flask-smorest view in the OpenAPI document.

    ``rule`` is the Flask rule as registered (``/files/<id:file_id>``); call
    this after the route exists. ``public`` routes need no API key.
    """
    api: TicketingApi = app.extensions["ticketing_api"]
    matches = [r for r in app.url_map.iter_rules() if r.rule == rule]
    if not matches:
        raise LookupError(f"no route {rule} to document")
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if description:
        operation["description"] = description
    if public:
        operation["security"] = []
    api.spec.path(rule=matches[0], operations={method.lower(): operation})
