"""The security monitor: attack-pattern detection, failed-auth tracking, rate limits.

A Flask extension any app of the platform can use; the ticket service is its
first user:

    from ticketing.security import SecurityMonitor, ratelimit

    security = SecurityMonitor()

    def create_app():
        app = Flask(__name__)
        ...
        db.init_app(app)
        security.init_app(app)

    @bp.post("/withdrawals")
    @ratelimit("withdrawal")
    def create_withdrawal(): ...

What it does in each request (see docs/security.md):

1. works out the client IP (``X-Forwarded-For`` only behind ``security.trusted_proxies``);
2. applies the rate limits of :mod:`ticketing.security.rate_limits`;
3. scans path, query, form, JSON strings and chosen headers for SQL injection,
   XSS, path traversal, command injection and NUL bytes; a finding is recorded
   as a SUSPICIOUS_PATTERN event, and refused with 400 only for the classes in
   ``security.block`` found in the URL (default: path traversal and NUL bytes).

It listens to ``ticketing.signals.auth_failed`` (FAILED_AUTH; N failures per IP
or per key prefix within the window become MULTIPLE_FAILED_LOGINS) and
``ticketing.signals.access_denied`` (UNAUTHORIZED_ACCESS), and serves staff
the event list at ``GET /api/v1/staff/security-events``.

Configuration: the ``security`` and ``ratelimits`` sections of
``app.config["TICKETING"]`` (or ``app.config["SECURITY"]`` and
``app.config["RATELIMITS"]`` in an app without the ticket service's config).
Who the caller is comes from ``actor_loader`` (default:
``ticketing.auth.current_actor``): an object with ``kind`` ('partner' or
'staff') and ``id``, or None.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, Response, g, has_request_context, jsonify, request

from ticketing import signals
from ticketing.security.client_ip import client_ip as resolve_client_ip
from ticketing.security.events import (
    DEFAULT_SEVERITY,
    SEVERE,
    SEVERITIES,
    EventType,
    RecordedEvent,
    SecurityEvent,
    record_event,
    severe_event,
)
from ticketing.security.failed_auth import NOT_COUNTED, FailedAuthTracker
from ticketing.security.inspection import scan_request
from ticketing.security.metrics import start_at_zero
from ticketing.security.patterns import URL_PARTS, Finding, PatternClass
from ticketing.security.rate_limits import (
    AUTH_FAILED_FLAG,
    FailureCounter,
    KnownKeys,
    Limiter,
    RatePlan,
    build_limiter,
    deduct_failed_login,
    forget_key,
    key_digest,
    ratelimit,
)
from ticketing.security.settings import RateLimitSettings, SecuritySettings, check_sections

if TYPE_CHECKING:
    from flask import Request
    from werkzeug.local import LocalProxy

__all__ = [
    "DEFAULT_SEVERITY",
    "EventType",
    "PatternClass",
    "RecordedEvent",
    "SEVERE",
    "SecurityEvent",
    "SecurityMonitor",
    "ratelimit",
    "record_event",
    "severe_event",
]

log = logging.getLogger(__name__)

EXTENSION_KEY = "security_monitor"
_CLIENT_IP = "_security_client_ip"
_ACTOR = "_security_actor"
MAX_FINDINGS_IN_DETAILS = 20

#: Flask's ``request`` as what it is, a proxy (Flask types it as the request):
#: hot paths take the request itself from it once.
_request_proxy = cast("LocalProxy[Request]", request)


def _default_actor_loader() -> Any:
    try:
        from ticketing.auth import current_actor
    except ImportError:
        return None
    return current_actor()


class MonitorState:
    """The monitor as set up for one app: ``app.extensions["security_monitor"]``."""

    def __init__(
        self,
        app: Flask,
        security: SecuritySettings,
        ratelimits: RateLimitSettings,
        actor_loader: Callable[[], Any],
        api_key_header: str,
    ) -> None:
        self.app = app
        self.security = security
        self.ratelimits = ratelimits
        self.actor_loader = actor_loader
        self.api_key_header = api_key_header
        self.limiter: Limiter | None = None
        self.rate_plan: RatePlan | None = None
        self.failed_auth: FailedAuthTracker | None = None
        self.known_keys = KnownKeys()
        #: Digest of the key behind the request's signed-in session, if any
        #: (set by the support console): rate limits count it as that key.
        self.session_key_digest: Callable[[], str | None] | None = None

    def client_ip(self) -> str | None:
        """The current request's client IP (computed once per request)."""
        cached = g.get(_CLIENT_IP)
        if cached is None:
            cached = (
                resolve_client_ip(
                    request.remote_addr,
                    request.headers.get("X-Forwarded-For"),
                    self.security.trusted_proxies,
                )
                or ""
            )
            setattr(g, _CLIENT_IP, cached)
        return cached or None

    def current_actor(self) -> Any:
        """The authenticated caller, or None (never raises)."""
        try:
            return self.actor_loader()
        except Exception:
            log.debug("actor loader failed", exc_info=True)
            return None


class SecurityMonitor:
    """The extension object; ``init_app`` may be called for several apps."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        actor_loader: Callable[[], Any] | None = None,
        api_key_header: str = "X-API-Key",
    ) -> None:
        self.actor_loader = actor_loader or _default_actor_loader
        self.api_key_header = api_key_header
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> MonitorState:
        sections = dict(app.config.get("TICKETING") or {})
        sections.setdefault("security", app.config.get("SECURITY"))
        sections.setdefault("ratelimits", app.config.get("RATELIMITS"))
        security, ratelimits = check_sections(sections, app.config.get("REDIS_URL"))
        state = MonitorState(app, security, ratelimits, self.actor_loader, self.api_key_header)
        app.extensions[EXTENSION_KEY] = state
        start_at_zero(EventType, SEVERITIES, ratelimits.limits)

        state.limiter = build_limiter(app, state)
        # After the limits: a flood is refused before it is scanned and recorded.
        if security.scan.enabled:
            app.before_request(_scan)
        state.failed_auth = FailedAuthTracker(
            FailureCounter(
                lambda: state.limiter.storage if state.limiter is not None else None,
                security.failed_auth.window_seconds,
                ratelimits.key_prefix,
            ),
            security.failed_auth.threshold,
            security.failed_auth.window_seconds,
        )
        if security.events_api:
            from ticketing.security.api import bp, document

            if bp.name not in app.blueprints:
                app.register_blueprint(bp)
                document(app)
        return state


def _scan() -> Response | None:
    """before_request: record attack patterns; refuse blocked classes found in the URL."""
    state = request_state()
    findings = scan_request(_request_proxy._get_current_object(), state.security.scan)
    if not findings:
        return None
    blocked = sorted(
        {
            str(f.pattern_class)
            for f in findings
            if f.part in URL_PARTS and f.pattern_class in state.security.block
        }
    )
    record_event(EventType.SUSPICIOUS_PATTERN, details=_details(findings, blocked))
    if not blocked:
        return None
    response = jsonify(
        error={
            "code": "suspicious_request",
            "message": "The request URL contains a pattern that is refused: "
            + ", ".join(blocked)
            + ".",
            "details": {"classes": blocked},
        }
    )
    response.status_code = 400
    return response


def _details(findings: list[Finding], blocked: list[str]) -> dict[str, Any]:
    return {
        "classes": sorted({str(f.pattern_class) for f in findings}),
        "parts": sorted({f.part for f in findings}),
        "findings": [f.as_dict() for f in findings[:MAX_FINDINGS_IN_DETAILS]],
        "findings_total": len(findings),
        "blocked": blocked,
    }


def request_state() -> MonitorState:
    from flask import current_app

    state: MonitorState = current_app.extensions[EXTENSION_KEY]
    return state


# ------------------------------------------------------------------ signal receivers
# Connected once for the process; each acts only for apps that use the monitor.


@signals.auth_failed.connect
def _on_auth_failed(
    app: Flask, key_prefix: str | None = None, reason: str | None = None, **_: Any
) -> None:
    state = getattr(app, "extensions", {}).get(EXTENSION_KEY)
    if state is None:
        return
    if reason not in NOT_COUNTED and has_request_context():
        setattr(g, AUTH_FAILED_FLAG, True)
        forget_key(state, key_digest(state))
        deduct_failed_login(state)
    state.failed_auth.failed(key_prefix=key_prefix, reason=reason)


@signals.access_denied.connect
def _on_access_denied(
    app: Flask, actor: Any = None, resource: str | None = None, resource_id: Any = None, **_: Any
) -> None:
    if getattr(app, "extensions", {}).get(EXTENSION_KEY) is None:
        return
    record_event(
        EventType.UNAUTHORIZED_ACCESS,
        actor=actor,
        details={
            "resource": resource,
            "resource_id": None if resource_id is None else str(resource_id),
        },
    )
