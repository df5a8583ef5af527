"""The API's interactive documentation (Swagger UI) at ``/api/docs``, served by the service.

Swagger UI's files come from a pinned package (``flask-swagger-ui``, whose
version follows Swagger UI's; only its ``dist/`` files are used), so the page
works offline, loads nothing from a CDN, and changes only when the pin does.
The page runs under a Content-Security-Policy like the console's: scripts only
from this origin (the start-up script is a file, not inline), no frames, no
form posts elsewhere. Swagger UI sets inline ``style`` attributes, so styles
alone may be inline.

    app.register_blueprint(docs_page.bp)   # in create_app, after the OpenAPI document
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, Response, abort, render_template_string, send_from_directory, url_for

#: Swagger UI's own files (the pinned package's ``dist/``).
SWAGGER_DIST = Path(flask_swagger_ui.__file__).with_name("dist")
#: The service's start-up script for it.
STATIC = Path(__file__).with_name("static")
#: What may be fetched from ``/api/docs/assets/``: nothing else of either folder.
ASSETS = {
    "swagger-ui.css": SWAGGER_DIST,
    "swagger-ui-bundle.js": SWAGGER_DIST,
    "swagger-ui-standalone-preset.js": SWAGGER_DIST,
    "favicon-32x32.png": SWAGGER_DIST,
    "swagger-init.js": STATIC,
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>partnerwatch tickets API</title>
  <link rel="icon" href="{{ asset('favicon-32x32.png') }}">
  <link rel="stylesheet" href="{{ asset('swagger-ui.css') }}">
  <script src="{{ asset('swagger-ui-bundle.js') }}" defer></script>
  <script src="{{ asset('swagger-ui-standalone-preset.js') }}" defer></script>
  <script src="{{ asset('swagger-init.js') }}" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{{ openapi_url }}">
    <noscript>The interactive documentation needs JavaScript; the document itself is at
      <a href="{{ openapi_url }}">{{ openapi_url }}</a>.</noscript>
  </div>
</body>
</html>
"""

bp = Blueprint("api_docs", __name__, url_prefix="/api/docs")


def _asset_url(name: str) -> str:
    return url_for("api_docs.asset", name=name)


@bp.get("")
def page() -> Response:
    html = render_template_string(PAGE, asset=_asset_url, openapi_url="/api/openapi.json")
    return _protected(Response(html, mimetype="text/html"))


@bp.get("/assets/<name>")
def asset(name: str) -> Response:
    folder = ASSETS.get(name)
    if folder is None:
        abort(404)
    response = send_from_directory(folder, name, max_age=86400)
    return _protected(response)


def _protected(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
