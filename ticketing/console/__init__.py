"""The support console: server-rendered pages where staff work the queue (``/console``).

    from ticketing.console import init_app
    init_app(app)          # after the security monitor (its rate limits cover the console)

Staff sign in with their API key, which starts a server-side session (a
``console_sessions`` row); the signed cookie (HttpOnly, SameSite=Lax, Secure
over HTTPS, path ``/console``) holds only a random token for it. Every request
checks the session (not signed out, not idle longer than
``console.idle_timeout``, not older than ``console.session_lifetime``) and its
key again (revoked, suspended, deactivated: signed out at once). Every form
carries a CSRF token (Flask-WTF's CSRFProtect, for the console's routes
only: the JSON API authenticates with a header, which a browser never sends
by itself). The pages call the same domain functions as
the staff API (``ticketing.desk.tickets``, ``ticketing.desk.queue``, ``ticketing.desk.workflow``)
and validate input with the same schemas. The security monitor scans console
requests as any other; console routes count against the signed-in key's
``api_call`` limit and, for failed sign-ins, the client IP's ``login`` limit.

Open pages poll a small JSON endpoint (``/console/live/...``) every
``console.poll_interval`` and swap in what changed; after
``console.stale_after`` missed polls the page says it is stale.
Configuration: the ``console`` section (:mod:`ticketing.console.settings`).
"""

from __future__ import annotations

import os
import secrets
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_wtf.csrf import CSRFProtect

from ticketing.auth import SESSION_LOADER
from ticketing.config import ConfigError
from ticketing.console.settings import ConsoleSettings, load_settings

EXTENSION_KEY = "console"
PREFIX = "/console"
SECRET_ENV = "TICKETING_SECRET_KEY"
csrf = CSRFProtect()


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, Secure when the request came over HTTPS (``auto``)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def get_cookie_secure(self, app: Flask) -> bool:
        if self.mode == "auto":
            return has_request_context() and request.is_secure
        return self.mode == "always"

    def should_set_cookie(self, app: Flask, session: SessionMixin) -> bool:
        """Only when the session changed: a live poll answered after a form's redirect
        would otherwise write back a cookie without the form's notice. Lifetime and idle
        time are kept on the server (``console_sessions``), not by refreshing the cookie."""
        return bool(session.modified)


def secret_key(app: Flask, settings: ConsoleSettings) -> str:
    """The signing key: app config, ``$TICKETING_SECRET_KEY``, the configured file, or one
    generated once into the instance folder (shared by the workers of one host)."""
    configured: str | None = app.config.get("SECRET_KEY")
    if configured:
        return configured
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    if settings.secret_key_file:
        try:
            key = Path(settings.secret_key_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                [f"console.secret_key_file: cannot be read ({exc.strerror or exc})"]
            ) from None
        if len(key) < 32:
            raise ConfigError(["console.secret_key_file: the key must be at least 32 characters"])
        return key
    if app.testing:
        return secrets.token_urlsafe(32)
    path = Path(app.instance_path) / "console_secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    for _ in range(50):  # another worker may be writing it this very moment
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise ConfigError([f"console.secret_key_file: {path} is empty"])


def init_app(app: Flask) -> ConsoleSettings | None:
    settings = load_settings((app.config.get("TICKETING") or {}).get("console"))
    app.extensions[EXTENSION_KEY] = settings
    if not settings.enabled:
        return None
    app.config["SECRET_KEY"] = secret_key(app, settings)
    app.config.update(
        SESSION_COOKIE_NAME="partnerwatch_console",
        SESSION_COOKIE_PATH=PREFIX,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=settings.session_lifetime),
        # Tokens are checked on the console's routes only (guard.py) and last
        # as long as the sign-in (a page left open keeps working).
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.session_interface = ConsoleSessionInterface(settings.secure_cookie)
    csrf.init_app(app)

    # The route modules add their routes to blueprint.bp as they are imported.
    from ticketing.console import (  # noqa: F401 (actions ... ticket_page: imported for that)
        actions,
        blueprint,
        bulk_page,
        guard,
        incidents_page,
        live,
        login,
        maintenance_page,
        queue_page,
        search_page,
        security_page,
        session,
        sessions_page,
        ticket_page,
    )

    app.register_blueprint(blueprint.bp)
    app.extensions[SESSION_LOADER] = session.session_actor
    monitor = app.extensions.get("security_monitor")
    if monitor is not None:
        monitor.session_key_digest = session.session_key_digest
    blueprint.count_like_the_api(app)
    return settings
