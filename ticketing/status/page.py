"""The public status page: ``/status`` (HTML, live), Statuspage-compatible JSON, an Atom feed.

- ``GET /status``: overall state, components, active incidents with their
  updates, upcoming maintenance, 90 days of history per component. Server
  rendered, one stylesheet and one small script from this service (no CDN);
  the script asks ``/status/live`` for the page's body every
  ``status.poll_interval`` and swaps it in, so the page follows without reload.
- ``GET /api/v2/summary.json``, ``status.json``, ``components.json``,
  ``incidents.json``, ``incidents/unresolved.json``,
  ``scheduled-maintenances.json``, ``scheduled-maintenances/upcoming.json``,
  ``scheduled-maintenances/active.json``: the shapes of Statuspage's public API
  (``page``, ``status`` {indicator, description}, ``components``,
  ``incidents`` with ``incident_updates``, ``scheduled_maintenances``), so
  widgets and tools written for it read this page.
- ``GET /status/feed.atom``: published incidents and maintenance, newest first.

Only published incidents appear. The model of the page is computed at most
once per ``status.cache_ttl`` per process and shared by every request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, current_app, render_template, request

from ticketing.db import db
from ticketing.models import utcnow
from ticketing.outbox.store import isoformat
from ticketing.status import incidents
from ticketing.status.maintenance import effective_status
from ticketing.status.models import Incident, IncidentUpdate, Maintenance
from ticketing.status.notify import page_url
from ticketing.status.settings import STATES, StatusSettings

if TYPE_CHECKING:
    from ticketing.status import Status

bp = Blueprint(
    "status_page",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/status/static",
)
PAGE_ID = "partnerwatch"
#: Statuspage lists the 50 most recent incidents.
RECENT = 50
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _settings() -> StatusSettings:
    settings: StatusSettings = current_app.extensions["status"].settings
    return settings


# ------------------------------------------------------------------ the model


@dataclass
class Model:
    """Everything the page, the JSON and the feed show, read in one go."""

    now: datetime
    components: list[incidents.ComponentState]
    indicator: str
    description: str
    active: list[Incident]
    recent: list[Incident]
    updates: dict[int, list[IncidentUpdate]]
    maintenances: list[Maintenance]
    history: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: Each maintenance's state by the clock (maintenance.effective_status).
    mstatus: dict[int, str] = field(default_factory=dict)
    #: Answers rendered from this model, by (name, host): every request of the
    #: model's lifetime gets the same bytes, rendered once.
    rendered: dict[tuple[str, str], str] = field(default_factory=dict)
    updated_at: datetime | None = None


def build_model(settings: StatusSettings) -> Model:
    now = utcnow()
    states = incidents.component_states(settings, now)
    indicator, description = incidents.overall(states)
    since = now - timedelta(days=settings.history_days)
    published = list(
        db.session.execute(
            db.select(Incident)
            .where(
                Incident.published_at.is_not(None),
                (Incident.resolved_at.is_(None)) | (Incident.resolved_at >= since),
            )
            .order_by(Incident.id.desc())
        ).scalars()
    )
    recent = list(
        db.session.execute(
            db.select(Incident)
            .where(Incident.published_at.is_not(None))
            .order_by(Incident.id.desc())
            .limit(RECENT)
        ).scalars()
    )
    active = [i for i in published if i.resolved_at is None]
    maintenances = list(
        db.session.execute(
            db.select(Maintenance)
            .where(Maintenance.ends_at >= since, Maintenance.status != "cancelled")
            .order_by(Maintenance.starts_at)
        ).scalars()
    )
    ids = {i.id for i in published} | {i.id for i in recent}
    model = Model(
        now=now,
        components=states,
        indicator=indicator,
        description=description,
        active=active,
        recent=recent,
        updates=incidents.updates_of(ids),
        maintenances=maintenances,
    )
    model.mstatus = {mt.id: effective_status(mt, now) for mt in maintenances}
    model.history = _history(settings, published, maintenances, now)
    stamps = [i.updated_at for i in recent] + [m.updated_at for m in maintenances]
    model.updated_at = max(stamps, default=now)
    return model


def _history(
    settings: StatusSettings,
    published: Iterable[Incident],
    maintenances: Iterable[Maintenance],
    now: datetime,
) -> dict[str, list[tuple[str, str]]]:
    """Per component, one ``(day, worst state)`` per day of ``history_days``, oldest first,
    from the published incidents and the maintenance records (they are the truth partners
    were told; Prometheus' view of the same days would show what never reached them)."""
    days = settings.history_days
    first = (now - timedelta(days=days - 1)).date()
    worst = {c.id: ["operational"] * days for c in settings.components}

    def mark(components: Iterable[str], start: datetime, end: datetime, state: str) -> None:
        lo = max((start.date() - first).days, 0)
        hi = min((end.date() - first).days, days - 1)
        for component in components:
            row = worst.get(component)
            if row is None:
                continue
            for day in range(lo, hi + 1):
                if STATES.index(state) > STATES.index(row[day]):
                    row[day] = state

    for incident in published:
        start = incident.published_at or incident.created_at
        mark(
            incident.components,
            min(start, incident.created_at),
            incident.resolved_at or now,
            incidents.IMPACT_STATES[incident.impact],
        )
    for maintenance in maintenances:
        if effective_status(maintenance, now) in ("in_progress", "completed"):
            mark(
                maintenance.components,
                maintenance.starts_at,
                min(maintenance.finished_at or maintenance.ends_at, now),
                "under_maintenance",
            )
    return {
        component: [((first + timedelta(days=i)).isoformat(), state) for i, state in enumerate(row)]
        for component, row in worst.items()
    }


_cache_lock = threading.Lock()


def model() -> Model:
    """The page's model, shared by the requests of ``status.cache_ttl``."""
    settings = _settings()
    state: Status = current_app.extensions["status"]
    if settings.cache_ttl <= 0:
        return build_model(settings)
    now = time.monotonic()
    cached = state.cached
    if cached is not None and now - cached[0] < settings.cache_ttl:
        return cached[1]
    with _cache_lock:
        cached = state.cached
        if cached is not None and time.monotonic() - cached[0] < settings.cache_ttl:
            return cached[1]
        built = build_model(settings)
        # Shared by other requests' threads: detached, their loaded values kept (only
        # the model's own rows: the request's other objects stay in its session).
        rows: list[Any] = [*built.recent, *built.active, *built.maintenances]
        rows += [u for updates in built.updates.values() for u in updates]
        for row in {id(r): r for r in rows}.values():
            if row in db.session:
                db.session.expunge(row)
        state.cached = (time.monotonic(), built)
        return built


def invalidate() -> None:
    """Forget the cached model (this process): called after a change is committed."""
    state = current_app.extensions.get("status")
    if state is not None:
        state.cached = None


# ------------------------------------------------------------------ Statuspage JSON


def _page(m: Model) -> dict[str, Any]:
    return {
        "id": PAGE_ID,
        "name": _settings().page_name,
        "url": page_url(),
        "time_zone": "Etc/UTC",
        "updated_at": isoformat(m.updated_at or m.now),
    }


def _component(c: incidents.ComponentState, m: Model) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "status": c.status,
        "created_at": isoformat(m.now),
        "updated_at": isoformat(m.updated_at or m.now),
        "position": c.position,
        "description": c.description or None,
        "showcase": True,
        "start_date": None,
        "group_id": None,
        "page_id": PAGE_ID,
        "group": False,
        "only_show_if_degraded": False,
    }


def _affected(m: Model, ids: Iterable[str]) -> list[dict[str, Any]]:
    return [_component(c, m) for c in m.components if c.id in set(ids)]


def _incident(i: Incident, m: Model) -> dict[str, Any]:
    base = page_url()
    updates = m.updates.get(i.id, [])
    monitoring = [u.created_at for u in updates if u.status == "monitoring"]
    return {
        "id": str(i.id),
        "name": i.title,
        "status": i.status,
        "created_at": isoformat(i.published_at or i.created_at),
        "updated_at": isoformat(i.updated_at),
        "monitoring_at": isoformat(min(monitoring)) if monitoring else None,
        "resolved_at": isoformat(i.resolved_at) if i.resolved_at else None,
        "impact": i.impact,
        "shortlink": f"{base}#incident-{i.id}" if base else None,
        "started_at": isoformat(i.created_at),
        "page_id": PAGE_ID,
        "incident_updates": [
            {
                "id": str(u.id),
                "status": u.status,
                "body": u.body,
                "incident_id": str(i.id),
                "created_at": isoformat(u.created_at),
                "updated_at": isoformat(u.created_at),
                "display_at": isoformat(u.created_at),
                "affected_components": None,
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
            }
            for u in updates
        ],
        "components": _affected(m, i.components),
    }


def _maintenance(mt: Maintenance, m: Model) -> dict[str, Any]:
    status = {"scheduled": "scheduled", "in_progress": "in_progress"}.get(
        m.mstatus.get(mt.id, mt.status), "completed"
    )
    return {
        "id": f"m{mt.id}",
        "name": mt.title,
        "status": status,
        "created_at": isoformat(mt.created_at),
        "updated_at": isoformat(mt.updated_at),
        "monitoring_at": None,
        "resolved_at": isoformat(mt.finished_at) if mt.finished_at else None,
        "impact": "maintenance",
        "shortlink": None,
        "started_at": isoformat(mt.starts_at),
        "page_id": PAGE_ID,
        "incident_updates": [
            {
                "id": f"m{mt.id}",
                "status": status,
                "body": mt.body or mt.title,
                "incident_id": f"m{mt.id}",
                "created_at": isoformat(mt.created_at),
                "updated_at": isoformat(mt.updated_at),
                "display_at": isoformat(mt.created_at),
                "affected_components": None,
                "deliver_notifications": True,
                "custom_tweet": None,
                "tweet_id": None,
            }
        ],
        "components": _affected(m, mt.components),
        "scheduled_for": isoformat(mt.starts_at),
        "scheduled_until": isoformat(mt.ends_at),
    }


def _upcoming(m: Model) -> list[Maintenance]:
    return [mt for mt in m.maintenances if m.mstatus[mt.id] in ("scheduled", "in_progress")]


def summary(m: Model) -> dict[str, Any]:
    return {
        "page": _page(m),
        "status": {"indicator": m.indicator, "description": m.description},
        "components": [_component(c, m) for c in m.components],
        "incidents": [_incident(i, m) for i in m.active],
        "scheduled_maintenances": [_maintenance(mt, m) for mt in _upcoming(m)],
    }


def _rendered(m: Model, name: str, make: Callable[[], str]) -> str:
    """``make()``, once per model, name and host (links may name the host)."""
    key = (name, request.host_url)
    text = m.rendered.get(key)
    if text is None:
        text = make()
        m.rendered[key] = text  # two threads at once both render: the same text
    return text


def _json_of(m: Model, name: str, make: Callable[[], dict[str, Any]]) -> Response:
    response = Response(
        _rendered(m, name, lambda: current_app.json.dumps(make()) + "\n"),
        mimetype="application/json",
    )
    response.headers["Cache-Control"] = "public, max-age=5"
    response.headers["Access-Control-Allow-Origin"] = "*"  # widgets on other sites
    return response


@bp.get("/api/v2/summary.json")
def summary_json() -> Response:
    m = model()
    return _json_of(m, "summary", lambda: summary(m))


@bp.get("/api/v2/status.json")
def status_json() -> Response:
    m = model()
    return _json_of(
        m,
        "status",
        lambda: {
            "page": _page(m),
            "status": {"indicator": m.indicator, "description": m.description},
        },
    )


@bp.get("/api/v2/components.json")
def components_json() -> Response:
    m = model()
    return _json_of(
        m,
        "components",
        lambda: {"page": _page(m), "components": [_component(c, m) for c in m.components]},
    )


@bp.get("/api/v2/incidents.json")
def incidents_json() -> Response:
    m = model()
    return _json_of(
        m,
        "incidents",
        lambda: {"page": _page(m), "incidents": [_incident(i, m) for i in m.recent]},
    )


@bp.get("/api/v2/incidents/unresolved.json")
def unresolved_json() -> Response:
    m = model()
    return _json_of(
        m,
        "unresolved",
        lambda: {"page": _page(m), "incidents": [_incident(i, m) for i in m.active]},
    )


def _maintenances(m: Model, which: tuple[str, ...] | None) -> dict[str, Any]:
    if which is None:  # all, most recent first
        listed = sorted(m.maintenances, key=lambda mt: mt.starts_at, reverse=True)[:RECENT]
    else:
        listed = [mt for mt in m.maintenances if m.mstatus[mt.id] in which]
    return {"page": _page(m), "scheduled_maintenances": [_maintenance(mt, m) for mt in listed]}


@bp.get("/api/v2/scheduled-maintenances.json")
def maintenances_json() -> Response:
    m = model()
    return _json_of(m, "maintenances", lambda: _maintenances(m, None))


@bp.get("/api/v2/scheduled-maintenances/upcoming.json")
def upcoming_json() -> Response:
    m = model()
    return _json_of(m, "upcoming", lambda: _maintenances(m, ("scheduled",)))


@bp.get("/api/v2/scheduled-maintenances/active.json")
def active_json() -> Response:
    m = model()
    return _json_of(m, "active", lambda: _maintenances(m, ("in_progress",)))


# ------------------------------------------------------------------ HTML and Atom

STATE_TEXT = {
    "operational": "Operational",
    "under_maintenance": "Under maintenance",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}


def _context(m: Model) -> dict[str, Any]:
    return {
        "m": m,
        "settings": _settings(),
        "state_text": STATE_TEXT,
        "upcoming": _upcoming(m),
        "poll_ms": int(_settings().poll_interval * 1000),
        "subscribe": subscriptions_enabled(),
        "names": {c.id: c.name for c in _settings().components},
    }


def subscriptions_enabled() -> bool:
    from ticketing.status import subscriptions

    return subscriptions.enabled()


def _html(text: str) -> Response:
    response = Response(text, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/status")
def page() -> Response:
    m = model()
    return _html(_rendered(m, "page", lambda: render_template("status/page.html", **_context(m))))


@bp.get("/status/live")
def live() -> Response:
    """The page's body alone, for the page's own poll."""
    m = model()
    return _html(_rendered(m, "live", lambda: render_template("status/_body.html", **_context(m))))


@bp.get("/status/feed.atom")
def feed() -> Response:
    return feed_response([])


def feed_response(extra: list[dict[str, Any]], title_suffix: str = "") -> Response:
    """The Atom feed: published incidents and maintenance, and ``extra`` entries (a
    partner's own); each entry's ``updated``/``published`` an RFC 3339 string."""
    m = model()
    entries: list[dict[str, Any]] = list(extra)
    for i in m.recent:
        updates = m.updates.get(i.id, [])
        entries.append(
            {
                "id": f"incident-{i.id}",
                "title": i.title,
                "updated": isoformat(i.updated_at),
                "published": isoformat(i.published_at or i.created_at),
                "lines": [
                    f"{u.created_at:%Y-%m-%d %H:%M} UTC {u.status}: {u.body}" for u in updates
                ],
            }
        )
    for mt in m.maintenances:
        entries.append(
            {
                "id": f"maintenance-{mt.id}",
                "title": f"Maintenance: {mt.title}",
                "updated": isoformat(mt.updated_at),
                "published": isoformat(mt.created_at),
                "lines": [
                    f"{mt.starts_at:%Y-%m-%d %H:%M} - {mt.ends_at:%Y-%m-%d %H:%M} UTC "
                    f"({m.mstatus[mt.id].replace('_', ' ')})",
                    mt.body,
                ],
            }
        )
    entries.sort(key=lambda e: str(e["updated"]), reverse=True)
    base = page_url() or request.url_root.rstrip("/") + "/status"
    text = render_template(
        "status/feed.xml",
        entries=entries,
        title=_settings().page_name + title_suffix,
        base=base,
        updated=isoformat(m.updated_at or m.now),
    )
    return Response(text, mimetype="application/atom+xml")


# ------------------------------------------------------------------ OpenAPI

_JSON_ROUTES = {
    "/api/v2/summary.json": "Status summary (Statuspage's shape): page, status, components, "
    "unresolved incidents, upcoming and active maintenance",
    "/api/v2/status.json": "Overall status (indicator, description)",
    "/api/v2/components.json": "Components and their states",
    "/api/v2/incidents.json": "The 50 most recent published incidents with their updates",
    "/api/v2/incidents/unresolved.json": "Published incidents not yet resolved",
    "/api/v2/scheduled-maintenances.json": "Scheduled maintenance, most recent first",
    "/api/v2/scheduled-maintenances/upcoming.json": "Maintenance not yet started",
    "/api/v2/scheduled-maintenances/active.json": "Maintenance in progress",
}


def document(app: Any) -> None:
    """The page's routes in the OpenAPI document (public: no key)."""
    from ticketing.api import openapi

    json_answer = {"200": {"description": "Statuspage-compatible JSON (docs/status.md)"}}
    for rule, summary_text in _JSON_ROUTES.items():
        openapi.document_route(
            app, rule, "get", summary=summary_text, tag="status", public=True,
            responses=json_answer,
        )  # fmt: skip
    html = {
        "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
    }
    openapi.document_route(
        app, "/status", "get", summary="The status page", tag="status", public=True,
        responses=html,
    )  # fmt: skip
    openapi.document_route(
        app, "/status/live", "get", summary="The status page's body (its own poll)",
        tag="status", public=True, responses=html,
    )  # fmt: skip
    openapi.document_route(
        app, "/status/feed.atom", "get", summary="Atom feed of incidents and maintenance",
        tag="status", public=True,
        responses={"200": {"description": "Atom", "content": {
            "application/atom+xml": {"schema": {"type": "string"}}}}},
    )  # fmt: skip
    openapi.document_route(
        app, "/status/static/<path:filename>", "get", summary="The status page's CSS and script",
        tag="status", public=True,
        responses={"200": {"description": "a file"}, "404": {"description": "no such file"}},
    )  # fmt: skip
    page_answer = {
        "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
        "404": {"description": "an invalid or expired link (or no email subscriptions)"},
        "422": {"description": "an invalid address or component"},
    }
    for rule, method, summary_text in (
        ("/status/p/<token>", "get", "A partner's private status page (a rotatable link)"),
        ("/status/p/<token>/live", "get", "A partner's private page's body (its own poll)"),
        ("/status/p/<token>/feed.atom", "get", "A partner's private Atom feed"),
        ("/status/subscribe", "post", "Subscribe by email (form: email, components)"),
        ("/status/subscription/<token>", "get", "Confirm or unsubscribe: the page a mail links to"),
        (
            "/status/subscription/<token>/<any(confirm, unsubscribe):action>",
            "post",
            "Confirm a subscription, or unsubscribe",
        ),
        ("/status/unsubscribe/<token>", "post", "One-click unsubscribe (RFC 8058)"),
    ):
        openapi.document_route(
            app, rule, method, summary=summary_text, tag="status", public=True,
            responses=page_answer,
        )  # fmt: skip


# ------------------------------------------------------------------ subscriptions


def _wants_html() -> bool:
    """A browser (it asks for text/html by name); API clients get the JSON error shape."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def _subscription_page(
    text: str, status: int = 200, code: str = "not_found", **context: Any
) -> Response:
    if status >= 400 and not _wants_html():
        from ticketing.errors import ApiError

        raise ApiError(status, code, text)
    response = _html(
        render_template("status/subscription.html", settings=_settings(), text=text, **context)
    )
    response.status_code = status
    return response


@bp.post("/status/subscribe")
def subscribe() -> Response:
    from ticketing.status import subscriptions

    if not subscriptions.enabled():
        return _subscription_page("Email subscriptions are not offered here.", 404)
    try:
        subscriptions.subscribe(
            _settings(),
            (request.form.get("email") or "")[:400],
            request.form.getlist("components")[:50],
        )
    except subscriptions.SubscriptionError as exc:
        db.session.rollback()
        return _subscription_page(f"Not subscribed: {exc}.", 422, "invalid_subscription")
    db.session.commit()
    return _subscription_page(
        "Check your mail: follow the link in it to confirm. Nothing is sent until you do."
    )


@bp.get("/status/subscription/<token>")
def subscription(token: str) -> Response:
    from ticketing.status import subscriptions

    confirming = subscriptions.read_token(token, "confirm")
    leaving = None if confirming else subscriptions.read_token(token, "unsubscribe")
    if confirming is None and leaving is None:
        return _subscription_page("This link is not valid (any more).", 404)
    return _subscription_page(
        "Confirm your subscription?" if confirming else "Unsubscribe from these mails?",
        token=token,
        action="confirm" if confirming else "unsubscribe",
        email=(confirming or leaving).email,  # type: ignore[union-attr]  # one is set
    )


@bp.post("/status/subscription/<token>/<any(confirm, unsubscribe):action>")
def subscription_action(token: str, action: str) -> Response:
    from ticketing.status import subscriptions

    subscriber = subscriptions.read_token(token, action)
    if subscriber is None:
        return _subscription_page("This link is not valid (any more).", 404)
    if action == "confirm":
        subscriptions.confirm(subscriber)
        text = "Subscribed: you will get a mail for each incident and maintenance."
    else:
        subscriptions.unsubscribe(subscriber)
        text = "Unsubscribed: no more mail is sent to this address."
    db.session.commit()
    return _subscription_page(text)


@bp.post("/status/unsubscribe/<token>")
def one_click_unsubscribe(token: str) -> Response:
    """RFC 8058 one-click unsubscribe (the List-Unsubscribe-Post header)."""
    from ticketing.status import subscriptions

    subscriber = subscriptions.read_token(token, "unsubscribe")
    if subscriber is not None:
        subscriptions.unsubscribe(subscriber)
        db.session.commit()
    else:
        from ticketing.errors import ApiError

        raise ApiError(404, "not_found", "This link is not valid (any more).")
    return Response(status=204)
