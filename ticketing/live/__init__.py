"""The live status feed: platform status pushed over a WebSocket at ``/ws/monitoring``.

A status widget, a wall display or a chat bot connects once and receives a
snapshot every ``live.interval``: platform API up and latency, the ticket
service's error ratio, energy pools, transaction rate and failure ratio,
active partners, open tickets by priority and the alerts firing. Prometheus
and Alertmanager stay the source of truth; one background thread per process
reads them once per interval for every client (docs/live.md).

    from ticketing import live

    def create_app(...):
        ...
        live.init_app(app)

Clients authenticate with the API keys of the JSON API: the ``X-API-Key``
header on the upgrade request, or, for browsers (which cannot set headers on
a WebSocket), ``{"type": "auth", "api_key": "..."}`` as the first message
within ``live.auth_timeout``. Keys never go in the URL. Staff see everything;
a partner sees platform-level status, its own open tickets and the public
alerts only.

Under gunicorn each connection holds a thread of the gthread worker for its
lifetime: ``threads`` must exceed ``live.max_clients`` (ticketing/runtime/gunicorn.conf.py).
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Flask, current_app, g, request
from flask_sock import Sock
from prometheus_flask_exporter import PrometheusMetrics
from simple_websocket import ConnectionClosed
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request
from wsproto.extensions import PerMessageDeflate

from ticketing.errors import ApiError
from ticketing.live.broadcaster import Broadcaster
from ticketing.live.connection import Connection, record_disconnect
from ticketing.live.settings import LiveConfigError, LiveSettings, load_settings
from ticketing.live.snapshot import QUERIES

if TYPE_CHECKING:
    from werkzeug.local import LocalProxy

__all__ = ["LiveConfigError", "LiveFeed", "LiveSettings", "PATH", "init_app", "stop_all"]

log = logging.getLogger("ticketing.live")

PATH = "/ws/monitoring"
API_KEY_HEADER = "X-API-Key"

_feeds: weakref.WeakSet[LiveFeed] = weakref.WeakSet()


class LiveFeed:
    """What ``init_app`` leaves in ``app.extensions["live"]``."""

    def __init__(
        self, app: Flask, settings: LiveSettings, authenticate: Callable[[str], Any] | None = None
    ):
        self.app = app
        self.settings = settings
        self.broadcaster = Broadcaster(app, settings)
        self._authenticate = authenticate or _ticketing_authenticate
        _feeds.add(self)

    # ---------------------------------------------------------- before the upgrade

    def admit(self) -> None:
        """Refuse, as a JSON error and before upgrading, what cannot become a client.

        A malformed upgrade (400/426), an invalid ``X-API-Key`` (401) and a full
        process (503) are answered here, so that no thread is spent on them.
        """
        problem = handshake_problem(request.environ)
        if problem is not None:
            status, text = problem
            headers = {"Sec-WebSocket-Version": "13"} if status == 426 else None
            raise ApiError(
                status,
                "upgrade_required" if status == 426 else "bad_request",
                text,
                headers=headers,
            )
        raw_key = request.headers.get(API_KEY_HEADER)
        if raw_key:
            actor = self._header_actor(raw_key)
            if actor is None:
                raise ApiError(401, "unauthorized", "the API key is not valid")
            g.live_actor = actor
        if not self.broadcaster.reserve():
            raise ApiError(
                503,
                "unavailable",
                "the live feed has no room for more clients in this process; retry later",
                headers={"Retry-After": str(int(self.settings.interval) + 1)},
            )
        g.live_slot = True

    def _header_actor(self, raw_key: str) -> Any:
        if self._authenticate is _ticketing_authenticate:
            # The request's own caller, resolved once for every hook that asks
            # (the security monitor does too), so a bad key counts as one failure.
            from ticketing.auth import current_actor

            return current_actor()
        return self._authenticate(raw_key)

    def release(self, _exc: BaseException | None = None) -> None:
        if g.pop("live_slot", False):
            self.broadcaster.release()

    # ---------------------------------------------------------- after the upgrade

    def serve(self, ws: Any) -> None:
        """The connection's whole life (runs in the thread that accepted it)."""
        connection = Connection(ws, self.broadcaster, self.settings, self._authenticate)
        reason = "closed"
        try:
            actor = g.pop("live_actor", None)  # set by admit() for a key in the header
            raw_key = request.headers.get(API_KEY_HEADER)
            if actor is None or raw_key is None:
                authenticated = connection.await_auth()
                if authenticated is None:
                    reason = "auth_failed"
                    if not connection.key_offered:
                        _missing_key_signal()
                    return
                actor, raw_key = authenticated
            _release_database()
            reason = connection.serve(actor, raw_key)
        except ConnectionClosed:
            pass
        finally:
            _release_database()
            connection.finish()
            record_disconnect(reason)

    def stop(self) -> None:
        """Close this app's clients (1001) and stop its snapshot thread; does not block."""
        self.broadcaster.stop()


def init_app(app: Flask, authenticate: Callable[[str], Any] | None = None) -> LiveFeed | None:
    """Check the ``live`` section and add the ``/ws/monitoring`` WebSocket route.

    ``authenticate(raw_key)`` returns the caller (an object with ``kind``
    ``"partner"``/``"staff"``, ``id`` and ``name``) or None; by default it is
    the ticket service's own API key check (:func:`ticketing.auth.authenticate`).
    Nothing starts here: the snapshot thread starts with the first client.
    """
    section = (app.config.get("TICKETING") or {}).get("live")
    environ = {
        name: app.config.get(name) or os.environ.get(name, "")
        for name in ("PROMETHEUS_URL", "ALERTMANAGER_URL")
    }
    settings = load_settings(section, known_queries=set(QUERIES), environ=environ)
    if not settings.enabled:
        app.extensions["live"] = None
        return None
    feed = LiveFeed(app, settings, authenticate)
    app.extensions["live"] = feed

    options = app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    options.setdefault("ping_interval", settings.ping_interval)
    options.setdefault("max_message_size", settings.max_message_size)

    bp = Blueprint("live", __name__)
    bp.before_request(feed.admit)
    bp.teardown_request(feed.release)
    sock = Sock()

    @sock.route(PATH, bp=bp)
    @PrometheusMetrics.do_not_track()  # a session is not a request: see live_feed_* metrics
    def monitoring(ws: Any) -> None:
        feed.serve(ws)

    app.register_blueprint(bp)
    return feed


# ------------------------------------------------------------------ helpers


def _ticketing_authenticate(raw_key: str) -> Any:
    """The ticket service's key check, committed (last use, security events) at once."""
    from ticketing.auth import authenticate
    from ticketing.db import db

    try:
        actor = authenticate(raw_key)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    finally:
        db.session.remove()  # the connection goes back to the pool: this thread stays long
    return actor


def _missing_key_signal() -> None:
    """Tell the security monitor, like an API endpoint called without a key."""
    if "sqlalchemy" not in current_app.extensions:
        return
    from ticketing import signals
    from ticketing.db import db

    try:
        # The app itself, not its proxy (which Flask types as the app).
        app = cast("LocalProxy[Flask]", current_app)._get_current_object()
        signals.auth_failed.send(app, key_prefix=None, reason="missing")
        db.session.commit()
    except Exception:
        log.exception("live feed: recording a missing key failed")
        db.session.rollback()


def _release_database() -> None:
    """Give the request's database connection back before a long-lived session."""
    if "sqlalchemy" in current_app.extensions:
        from ticketing.db import db

        db.session.remove()


def handshake_problem(environ: dict[str, Any]) -> tuple[int, str] | None:
    """Why simple-websocket would fail to accept this upgrade request, or None.

    The request is replayed through wsproto exactly as simple-websocket will
    do it, so a malformed upgrade is refused with a clean 400 (or 426 for an
    unsupported ``Sec-WebSocket-Version``) instead of failing mid-handshake.
    """
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version is not None and version.strip() != "13":
        return 426, "unsupported WebSocket version: use 13"
    lines = [b"GET / HTTP/1.1\r\n"]
    try:
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                header = "-".join(p.capitalize() for p in key[5:].split("_"))
                lines.append(f"{header}: {value}\r\n".encode())
        lines.append(b"\r\n")
        ws = WSConnection(ConnectionType.SERVER)
        ws.receive_data(b"".join(lines))
        for event in ws.events():
            if isinstance(event, Request):
                ws.send(AcceptConnection(extensions=[PerMessageDeflate()]))
                return None
    except Exception as exc:  # any protocol or encoding error: the client's fault
        return 400, f"not a valid WebSocket upgrade request: {exc}"[:300]
    return 400, "not a valid WebSocket upgrade request"


# ------------------------------------------------------------------ shutdown


def stop_all() -> None:
    """Close every client of every feed in this process (1001) and stop the snapshot threads."""
    for feed in list(_feeds):
        feed.stop()
