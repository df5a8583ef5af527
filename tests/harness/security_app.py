"""A small Flask app that uses the security monitor, for tests and the benchmark.

It is not the ticket service: it has just enough of an API (key auth, an
echo endpoint, ticket creation, a withdrawal, a per-partner resource, a
health check) to exercise every part of the monitor, the way any app of the
platform would use it. ``create()`` reads its settings from the environment,
so gunicorn can run it:

    SECURITY_TEST_DB=sqlite:////tmp/x.db REDIS_URL=redis://... \
        gunicorn -w 3 'tests.harness.security_app:create()'
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, g, jsonify, request

from ticketing import signals
from ticketing.db import db
from ticketing.security import SecurityEvent, SecurityMonitor, ratelimit

#: API keys of the test app: partner 1, partner 2, staff 7 (an admin).
KEYS = {
    "pw_aaaaaaaaaaaa_partner-one": ("partner", 1),
    "pw_bbbbbbbbbbbb_partner-two": ("partner", 2),
    "pw_cccccccccccc_staff-seven": ("staff", 7, "admin"),
}
PARTNER_1, PARTNER_2, STAFF = list(KEYS)
#: Resource owners: /api/v1/things/<id> belongs to partner ``id % 2 + 1``.


@dataclass(frozen=True)
class Actor:
    kind: str
    id: int
    #: staff only: "admin" may read security events (the ticket service's rule)
    role: str | None = None


def _prefix(raw: str) -> str | None:
    parts = raw.split("_")
    return parts[1] if len(parts) >= 3 and parts[0] == "pw" else None


def current_actor() -> Actor | None:
    """Authenticate ``X-API-Key`` once per request; failures send ``auth_failed``."""
    if "test_actor" not in g:
        raw = request.headers.get("X-API-Key")
        actor = None
        if raw:
            found = KEYS.get(raw)
            if found is None:
                signals.auth_failed.send(app_object(), key_prefix=_prefix(raw), reason="unknown")
            else:
                actor = Actor(*found)
        g.test_actor = actor
    return g.test_actor


def app_object() -> Flask:
    from flask import current_app

    return current_app._get_current_object()


def _pause() -> None:
    """``?sleep=0.05`` keeps a worker busy, so concurrent requests spread over workers."""
    seconds = request.args.get("sleep", type=float)
    if seconds:
        time.sleep(min(seconds, 1.0))


def _error(status: int, code: str, message: str):
    response = jsonify(error={"code": code, "message": message, "details": {}})
    response.status_code = status
    return response


def build_app(
    db_url: str,
    *,
    security: dict | None = None,
    ratelimits: dict | None = None,
    redis_url: str | None = None,
    monitor: bool = True,
) -> Flask:
    """The test app; ``monitor=False`` builds the same app without the security monitor."""
    app = Flask("security_app_under_test")
    app.config.update(
        SQLALCHEMY_DATABASE_URI=db_url,
        TESTING=True,
        SECURITY=security or {},
        RATELIMITS=dict(ratelimits or {}),
    )
    if redis_url:
        app.config["RATELIMITS"].setdefault("storage_url", redis_url)
    if db_url.startswith("sqlite"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"timeout": 30}}
    db.init_app(app)
    if monitor:
        SecurityMonitor(app, actor_loader=current_actor)

    @app.before_request
    def authenticate():
        if request.path.startswith("/api/") and request.endpoint != "status":
            if current_actor() is None:
                return _error(401, "unauthorized", "a valid API key is required")
        return None

    @app.after_request
    def worker_pid(response):
        response.headers["X-Worker-Pid"] = str(os.getpid())
        return response

    @app.get("/healthz")
    def health():
        _pause()
        return {"ok": True}

    @app.get("/api/v1/status")
    def status():
        """Needs no key (like an API's published documents)."""
        return {"status": "ok"}

    @app.route("/api/v1/echo", methods=["GET", "POST", "PUT"])
    def echo():
        _pause()
        body: Any = request.get_json(silent=True) if request.is_json else request.form.to_dict()
        return {"args": request.args.to_dict(), "body": body}

    @app.post("/api/v1/tickets")
    def create_ticket():
        return {"created": True}, 201

    @app.post("/api/v1/withdrawals")
    @ratelimit("withdrawal")
    def withdraw():
        return {"withdrawn": True}, 201

    @app.get("/api/v1/things/<int:thing_id>")
    def thing(thing_id: int):
        actor = current_actor()
        owner = thing_id % 2 + 1
        if actor.kind == "partner" and actor.id != owner:
            signals.access_denied.send(
                app_object(), actor=actor, resource="thing", resource_id=thing_id
            )
            return _error(404, "not_found", "thing not found")
        return {"id": thing_id, "owner": owner}

    with app.app_context():
        SecurityEvent.__table__.create(db.engine, checkfirst=True)
    return app


def create() -> Flask:
    """For gunicorn: settings from SECURITY_TEST_DB, REDIS_URL and SECURITY_TEST_CONFIG (JSON)."""
    extra = json.loads(os.environ.get("SECURITY_TEST_CONFIG") or "{}")
    return build_app(
        os.environ["SECURITY_TEST_DB"],
        security=extra.get("security"),
        ratelimits=extra.get("ratelimits"),
        redis_url=os.environ.get("REDIS_URL"),
    )
