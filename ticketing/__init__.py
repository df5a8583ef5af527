"""partnerwatch ticket service: partners file and follow tickets, support staff answer them.

Build the app with :func:`create_app`, as in Flask's tutorial:

    app = create_app()                                     # configured from the environment
    app = create_app({"SQLALCHEMY_DATABASE_URI": url,      # tests
                      "TICKETING": {"sla": {...}},         # ... with config overrides
                      "METRICS_REGISTRY": registry})       # ... metrics on their own registry

Environment: ``TICKETING_DATABASE_URL`` (default: SQLite in the instance
folder), ``TICKETING_CONFIG`` (a YAML file merged over the shipped
``ticketing.yml``), ``TICKETING_ATTACHMENTS_DIR`` (default: ``attachments`` in the
instance folder), ``TICKETING_SECRET_KEY`` (signs the console's sessions),
``REDIS_URL``, ``ALERTMANAGER_URL``, ``PROMETHEUS_URL``,
``PROMETHEUS_MULTIPROC_DIR`` (set by the gunicorn config).

The database is set up by :func:`ticketing.db.init_app` (``database_url`` is
importable from here too).

Under gunicorn: ``gunicorn -c ticketing/runtime/gunicorn.conf.py "ticketing:create_app()"``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from ticketing.api.body import SafeJSONProvider
from ticketing.auth.key_cache import EXTENSION_KEY as KEY_CACHE
from ticketing.auth.key_cache import KeyCache
from ticketing.config import load_sections
from ticketing.db import database_url
from ticketing.db import init_app as init_database
from ticketing.desk.settings import CoreSettings, check_core
from ticketing.errors import ApiError, register_error_handlers

#: Room for the multipart envelope around an uploaded file.
UPLOAD_OVERHEAD = 64 * 1024

__all__ = ["create_app", "database_url"]


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create and configure the ticket service app."""
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    app.json = SafeJSONProvider(app)
    default_database = f"sqlite:///{Path(app.instance_path) / 'ticketing.db'}"
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=os.environ.get("TICKETING_DATABASE_URL", default_database),
        TICKETING_CONFIG=os.environ.get("TICKETING_CONFIG"),
        ATTACHMENTS_DIR=os.environ.get("TICKETING_ATTACHMENTS_DIR")
        or str(Path(app.instance_path) / "attachments"),
        REDIS_URL=os.environ.get("REDIS_URL"),
        ALERTMANAGER_URL=os.environ.get("ALERTMANAGER_URL"),
        PROMETHEUS_URL=os.environ.get("PROMETHEUS_URL"),
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)

    if app.config["SQLALCHEMY_DATABASE_URI"] == default_database:
        os.makedirs(app.instance_path, exist_ok=True)

    # The YAML sections: app.config["TICKETING"][section]; the core checks its own.
    app.config["TICKETING"] = load_sections(
        app.config.get("TICKETING_CONFIG"), app.config.get("TICKETING")
    )
    settings = check_core(app.config["TICKETING"])
    app.extensions["ticketing"] = settings
    from ticketing.desk.classifier import init_app as init_classifier

    init_classifier(app)  # the category model (classifier section), loaded once per process
    if settings.api.key_cache_ttl > 0:
        app.extensions[KEY_CACHE] = KeyCache(settings.api.key_cache_ttl)
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = settings.attachments.max_bytes + UPLOAD_OVERHEAD

    init_database(app)
    register_error_handlers(app)

    from ticketing.api import health, openapi, partner, staff
    from ticketing.runtime import cli, metrics

    api = openapi.init_api(app)
    api.register_blueprint(health.bp)
    api.register_blueprint(partner.bp)
    api.register_blueprint(staff.bp)
    metrics.init_metrics(app)
    openapi.document_route(
        app,
        "/metrics",
        "get",
        summary="Prometheus metrics",
        tag="health",
        public=True,
        description="Public unless `api.metrics_token_file` is set: then only with "
        "`Authorization: Bearer <token>`.",
        responses={
            "200": {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "401": {"description": "A token is configured and the request has not got it"},
        },
    )
    cli.init_app(app)
    _init_request_hooks(app)

    # Extensions: each adds its own single line below (see docs/ticketing.md).
    from ticketing.security import SecurityMonitor  # EXTENSION security monitor + rate limits

    SecurityMonitor(app)
    from ticketing.outbox import (
        init_app as init_outbox,
    )  # EXTENSION notification outbox: ticketing/outbox/

    init_outbox(app)
    from ticketing.webhooks import (
        init_app as init_webhooks,
    )  # EXTENSION partner webhooks: ticketing/webhooks/

    init_webhooks(app)
    from ticketing.status import init_app as init_status  # EXTENSION status page: ticketing/status/

    init_status(app)
    from ticketing.live import init_app as init_live  # EXTENSION WebSocket feed: ticketing/live/

    init_live(app)
    from ticketing.console import (
        init_app as init_console,
    )  # EXTENSION support console: ticketing/console/

    init_console(app)
    _document_extension_routes(app)

    return app


def _document_extension_routes(app: Flask) -> None:
    """Extension routes that are not flask-smorest views, in the OpenAPI document."""
    from ticketing.api import openapi

    if app.extensions.get("live") is not None:
        from ticketing.live import PATH

        openapi.document_route(
            app,
            PATH,
            "get",
            tag="live",
            summary="Live status feed (WebSocket)",
            description="Upgrade to a WebSocket; snapshots of the platform's status are "
            "pushed every few seconds. Authenticate with the X-API-Key header "
            "or an `auth` message first (docs/live.md).",
            responses={
                "101": {"description": "Switching Protocols: the feed starts"},
                "400": {"description": "Not a WebSocket upgrade request"},
            },
        )


def _init_request_hooks(app: Flask) -> None:
    settings: CoreSettings = app.extensions["ticketing"]

    @app.before_request
    def limit_request_body() -> None:
        """JSON bodies are small; only upload endpoints take files (multipart)."""
        view = app.view_functions.get(request.endpoint or "")
        own_limit = getattr(view, "max_body_bytes", None)
        if getattr(view, "accepts_upload", False):
            limit = settings.attachments.max_bytes + UPLOAD_OVERHEAD
        elif own_limit is not None:  # a route of its own size (the Alertmanager receiver)
            limit = int(own_limit())
        else:
            limit = settings.api.max_json_bytes
        request.max_content_length = limit
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(
                413,
                "payload_too_large",
                "the request body is too large",
                details={"max_bytes": limit},
            )

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.path.startswith("/api/v1"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response
