"""The console's pages and form routes (blueprint ``console``, under ``/console``).

Every change goes through the domain functions the staff API calls
(``tickets.assign``, ``tickets.change_status``, ``tickets.post_message``,
``tickets.set_priority``/``set_category``) after the API's own schemas
validated the input, and commits with ``tickets.commit()``. A refused change
(an invalid transition, an agent assigning someone else, a closed ticket)
re-renders the page with the reason, the typed text kept, and the refusal's
4xx status. Pages are HTML; ``/console/live/...`` answer JSON for the poller.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import marshmallow as ma
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from ticketing.api.common import send_attachment
from ticketing.api.schemas import (
    AssignSchema,
    StaffMessageCreateSchema,
    StaffQueueQuerySchema,
    StatusChangeSchema,
    TriageSchema,
)
from ticketing.auth import Actor, current_actor
from ticketing.console import csrf
from ticketing.console.session import SignInRefused, sign_in, sign_out
from ticketing.db import autocommit_reads, db
from ticketing.desk import tickets
from ticketing.desk.choices import CATEGORIES, PRIORITIES, STATUSES
from ticketing.desk.queue import queue_page, sla_state, status_counts
from ticketing.desk.workflow import TRANSITIONS
from ticketing.errors import ApiError
from ticketing.models import Attachment, Message, Partner, Staff, Ticket, TicketAudit, utcnow
from ticketing.security.rate_limits import ACTIONS_ATTR

bp = Blueprint(
    "console", __name__, url_prefix="/console", template_folder="templates", static_folder="static"
)

#: Endpoints that answer without a signed-in session.
PUBLIC = frozenset({"console.login", "console.static", "console.not_found"})
ACTIVE = "open,in_progress"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def settings():
    return current_app.extensions["console"]


def count_like_the_api(app: Flask) -> None:
    """Console views count against ``api_call`` (per key) and ``login`` (failed key checks
    per IP) like API routes (see ``ticketing.security.rate_limits``)."""
    for endpoint, view in app.view_functions.items():
        if endpoint.startswith("console.") and endpoint != "console.static":
            marks = set(getattr(view, ACTIONS_ATTR, ())) | {"api_call", "login"}
            setattr(view, ACTIONS_ATTR, frozenset(marks))


# ------------------------------------------------------------------ templates


@bp.app_template_filter("when")
def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


@bp.app_template_filter("ago")
def _ago(moment, now) -> str:
    """``in 25 min``, ``3 h ago``, ``just now``: how far ``moment`` is from ``now``."""
    if moment is None:
        return "—"
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 60:
        return "just now" if seconds <= 0 else "in under a minute"
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if size >= length:
            amount = int(size // length)
            if unit == "d" and amount > 60:
                return moment.strftime("%Y-%m-%d")
            text = f"{amount} {unit}"
            if unit == "h" and size % 3600 >= 60 and amount < 10:
                text += f" {int(size % 3600 // 60)} min"
            return f"in {text}" if seconds > 0 else f"{text} ago"
    return ""


@bp.context_processor
def _console_settings():
    return {"config_poll": settings().poll_interval, "stale_after": settings().stale_after}


# ------------------------------------------------------------------ request hooks


@bp.before_request
def _guard():
    if request.endpoint == "console.static":
        return None
    if request.method == "POST":
        csrf.protect()
    if request.endpoint in PUBLIC:
        return None
    actor = current_actor()
    if actor is None or not actor.is_staff:
        if _wants_json():
            return jsonify(
                error={"code": "unauthorized", "message": "sign in again", "details": {}}
            ), 401
        return redirect(url_for("console.login", next=_local_path(request.full_path)))
    if request.method == "GET":
        autocommit_reads()
    return None


@bp.after_request
def _headers(response):
    if request.endpoint != "console.static":
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # The security monitor answers refusals (429, a blocked URL) as JSON: show a page.
    if (
        response.status_code >= 400
        and response.mimetype == "application/json"
        and not _wants_json()
    ):
        error = (response.get_json(silent=True) or {}).get("error") or {}
        page = _error_page(response.status_code, error.get("message") or "refused")
        page.headers.extend(
            (k, v)
            for k, v in response.headers.items()
            if k.startswith("X-RateLimit") or k == "Retry-After"
        )
        return page
    return response


def _wants_json() -> bool:
    return request.endpoint is not None and request.endpoint.startswith("console.live")


def _error_page(status: int, message: str):
    response = current_app.make_response(
        (
            render_template(
                "console/error.html", status=status, message=message, actor=_signed_in()
            ),
            status,
        )
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    return response


def _signed_in() -> Actor | None:
    try:
        actor = current_actor()
    except Exception:  # an error page must render even when the database is down
        return None
    return actor if actor is not None and actor.is_staff else None


@bp.errorhandler(CSRFError)
def _csrf_refused(error):
    db.session.rollback()
    return _error_page(
        400,
        "This form was not sent from an open console page (its security "
        "token is missing or no longer valid). Go back, reload the page "
        "and try again.",
    )


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    db.session.rollback()
    if _wants_json():
        return jsonify(
            error={"code": error.code, "message": error.message, "details": error.details}
        ), error.status
    return _error_page(error.status, error.message[:1].upper() + error.message[1:] + ".")


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    db.session.rollback()
    if _wants_json():
        return jsonify(
            error={"code": "error", "message": error.description or error.name, "details": {}}
        ), error.code or 500
    return _error_page(error.code or 500, error.description or error.name)


def _local_path(target: str | None) -> str | None:
    """``target`` if it is a path inside the console (no open redirects), else None."""
    if not target:
        return None
    parts = urlsplit(target)
    if (
        parts.scheme
        or parts.netloc
        or not parts.path.startswith("/console")
        or "\\" in target
        or target.startswith("//")
    ):
        return None
    return target.rstrip("?")


# ------------------------------------------------------------------ signing in


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_page = _local_path(request.values.get("next"))
    if request.method == "GET":
        if _signed_in() is not None:
            return redirect(next_page or url_for("console.queue"))
        return render_template("console/login.html", next=next_page, error=None)
    raw = request.form.get("api_key", "")
    try:
        if not raw.strip() or len(raw) > 200:
            raise SignInRefused(401, "That API key is not valid.")
        sign_in(raw)
    except SignInRefused as refused:
        return render_template(
            "console/login.html", next=next_page, error=refused.message
        ), refused.status
    return redirect(next_page or url_for("console.queue"), 303)


@bp.post("/logout")
def logout():
    sign_out()
    flash("You are signed out.", "info")
    return redirect(url_for("console.login"), 303)


# ------------------------------------------------------------------ the queue


def _queue_filters(args: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The queue's filters (validated by the staff API's schema) and the form's values."""
    form = {
        name: (args.get(name) or "").strip()
        for name in ("status", "priority", "category", "partner", "assignee", "overdue")
    }
    if "status" not in args:
        form["status"] = "active"
    raw: dict[str, str] = {"order": "due"}
    if form["status"] == "active":
        raw["status"] = ACTIVE
    elif form["status"] not in ("", "any"):
        raw["status"] = form["status"]
    for name in ("priority", "category", "assignee"):
        if form[name]:
            raw[name] = form[name]
    if form["partner"]:
        raw["partner_id"] = form["partner"]
    if form["overdue"] in ("yes", "no"):
        raw["overdue"] = "true" if form["overdue"] == "yes" else "false"
    elif form["overdue"]:
        raw["overdue"] = form["overdue"]  # refused by the schema, with its message
    if args.get("cursor"):
        raw["cursor"] = args["cursor"]
    try:
        filters = StaffQueueQuerySchema().load(raw)
    except ma.ValidationError as exc:
        raise ApiError(
            400, "invalid_query", "these filters are not valid: " + _messages(exc.messages)
        ) from None
    return filters, form


def _messages(messages: Any) -> str:
    if isinstance(messages, dict):
        return "; ".join(f"{name}: {_messages(value)}" for name, value in messages.items())
    if isinstance(messages, list):
        return " ".join(_messages(m) for m in messages)
    return str(messages)


def _names():
    staff = db.session.execute(db.select(Staff).order_by(Staff.name)).scalars().all()
    partners = db.session.execute(db.select(Partner).order_by(Partner.name)).scalars().all()
    return staff, partners


def _queue_context(actor: Actor) -> dict[str, Any]:
    filters, form = _queue_filters(request.args)
    cursor = filters.pop("cursor", None)
    now = utcnow()
    page = queue_page(actor, filters, cursor=cursor, limit=settings().page_size, now=now)
    counts = status_counts(actor, filters, now=now)
    staff, partners = _names()
    query = {k: v for k, v in form.items() if v}
    return {
        "actor": actor,
        "tickets": page.items,
        "next_cursor": page.next_cursor,
        "cursor": cursor,
        "counts": counts,
        "form": form,
        "now": now,
        "staff": staff,
        "partners": partners,
        "staff_names": {s.id: s.name for s in staff},
        "partner_names": {p.id: p.name for p in partners},
        "sla": lambda t: sla_state(t, now, timedelta(seconds=settings().due_soon)),
        "query": query,
        "next_url": (
            url_for("console.queue") + "?" + urlencode({**query, "cursor": page.next_cursor})
        )
        if page.next_cursor
        else None,
        "live_url": url_for("console.live_queue")
        + (
            "?" + urlencode({**query, **({"cursor": cursor} if cursor else {})})
            if query or cursor
            else ""
        ),
        "statuses": STATUSES,
        "priorities": PRIORITIES,
        "categories": CATEGORIES,
    }


QUEUE_REGIONS = {
    "status-counts": "console/_counts.html",
    "queue-table": "console/_queue_table.html",
}


@bp.get("/")
def queue():
    context = _queue_context(current_actor())
    regions, version = _render_regions(QUEUE_REGIONS, context)
    return render_template("console/queue.html", regions=regions, version=version, **context)


@bp.get("/live/queue")
def live_queue():
    return _live(QUEUE_REGIONS, _queue_context(current_actor()))


# ------------------------------------------------------------------ a ticket

TICKET_REGIONS = {
    "ticket-summary": "console/_ticket_summary.html",
    "conversation": "console/_conversation.html",
    "ticket-actions": "console/_ticket_actions.html",
    "audit": "console/_audit.html",
}


def _ticket_context(actor: Actor, ticket: Ticket) -> dict[str, Any]:
    now = utcnow()
    messages = (
        db.session.execute(
            db.select(Message).where(Message.ticket_id == ticket.id).order_by(Message.id)
        )
        .scalars()
        .all()
    )
    attachments = (
        db.session.execute(
            db.select(Attachment).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
        )
        .scalars()
        .all()
    )
    audit = (
        db.session.execute(
            db.select(TicketAudit)
            .where(TicketAudit.ticket_id == ticket.id)
            .order_by(TicketAudit.id)
        )
        .scalars()
        .all()
    )
    staff, partners = _names()
    staff_names = {s.id: s.name for s in staff}
    partner_names = {p.id: p.name for p in partners}
    return {
        "actor": actor,
        "ticket": ticket,
        "messages": messages,
        "attachments": attachments,
        "audit": audit,
        "now": now,
        "staff": [s for s in staff if s.active],
        "staff_names": staff_names,
        "partner_names": partner_names,
        "sla": sla_state(ticket, now, timedelta(seconds=settings().due_soon)),
        "transitions": TRANSITIONS.get(ticket.status, ()),
        "priorities": PRIORITIES,
        "categories": CATEGORIES,
        "live_url": url_for("console.live_ticket", ticket_id=ticket.id),
        "error": None,
        "draft": "",
    }


def _ticket_page(ticket: Ticket, status: int = 200, **extra: Any):
    context = _ticket_context(current_actor(), ticket)
    context.update(extra)
    regions, version = _render_regions(TICKET_REGIONS, context)
    return render_template(
        "console/ticket.html", regions=regions, version=version, **context
    ), status


@bp.get("/tickets/<id:ticket_id>")
def ticket(ticket_id):
    return _ticket_page(tickets.staff_ticket(ticket_id))


@bp.get("/live/tickets/<id:ticket_id>")
def live_ticket(ticket_id):
    ticket = tickets.staff_ticket(ticket_id)
    return _live(TICKET_REGIONS, _ticket_context(current_actor(), ticket))


def _change(
    ticket_id: int, schema: ma.Schema, data: dict[str, Any], apply, done: str, draft: str = ""
):
    """Validate ``data`` with the API's ``schema``, ``apply(ticket, loaded, actor)``, commit;
    a refusal re-renders the ticket with its reason (and the typed text)."""
    actor = current_actor()
    ticket = tickets.staff_ticket(ticket_id)
    try:
        loaded = schema.load(data)
        apply(ticket, loaded, actor)
        tickets.commit()
    except ma.ValidationError as exc:
        db.session.rollback()
        return _ticket_page(
            tickets.staff_ticket(ticket_id),
            422,
            error="Not saved: " + _messages(exc.messages),
            draft=draft,
        )
    except ApiError as exc:
        db.session.rollback()
        return _ticket_page(
            tickets.staff_ticket(ticket_id), exc.status, error=_explain(exc), draft=draft
        )
    flash(done, "success")
    return redirect(url_for("console.ticket", ticket_id=ticket_id), 303)


def _explain(error: ApiError) -> str:
    message = error.message[:1].upper() + error.message[1:] + "."
    if error.code == "invalid_transition":
        allowed = error.details.get("allowed") or []
        message += (
            (" From here it can go to: " + ", ".join(s.replace("_", " ") for s in allowed) + ".")
            if allowed
            else ""
        )
    return message


@bp.post("/tickets/<id:ticket_id>/messages")
def post_message(ticket_id):
    body = request.form.get("body", "").replace("\r\n", "\n")
    internal = request.form.get("kind") == "note"

    def apply(ticket, data, actor):
        tickets.post_message(ticket, actor, data["body"], internal=data["internal"])

    return _change(
        ticket_id,
        StaffMessageCreateSchema(),
        {"body": body, "internal": internal},
        apply,
        "Internal note added." if internal else "Reply sent to the partner.",
        draft=body,
    )


@bp.post("/tickets/<id:ticket_id>/assign")
def assign(ticket_id):
    choice = request.form.get("assignee", "")
    actor = current_actor()
    value: Any = (
        actor.id
        if choice == "me"
        else None
        if choice == "none"
        else int(choice)
        if choice.isdigit() and len(choice) <= 10
        else choice
    )

    def apply(ticket, data, actor):
        tickets.assign(ticket, data["assignee_id"], actor)

    return _change(ticket_id, AssignSchema(), {"assignee_id": value}, apply, "Assignee updated.")


@bp.post("/tickets/<id:ticket_id>/status")
def change_status(ticket_id):
    def apply(ticket, data, actor):
        tickets.change_status(ticket, data["status"], actor)

    target = request.form.get("status", "")
    return _change(
        ticket_id,
        StatusChangeSchema(),
        {"status": target},
        apply,
        f"Status changed to {target.replace('_', ' ')}.",
    )


@bp.post("/tickets/<id:ticket_id>/triage")
def triage(ticket_id):
    data = {name: request.form[name] for name in ("priority", "category") if request.form.get(name)}

    def apply(ticket, data, actor):
        if "priority" in data:
            tickets.set_priority(ticket, data["priority"], actor)
        if "category" in data:
            tickets.set_category(ticket, data["category"], actor)

    return _change(ticket_id, TriageSchema(), data, apply, "Priority and category saved.")


@bp.get("/tickets/<id:ticket_id>/attachments/<id:attachment_id>")
def download(ticket_id, attachment_id):
    actor = current_actor()
    ticket = tickets.staff_ticket(ticket_id)
    return send_attachment(tickets.ticket_attachment(actor, ticket, attachment_id))


# ------------------------------------------------------------------ security events


@bp.get("/security")
def security():
    actor = current_actor()
    if not actor.is_admin:
        abort(403, "The security page is for admins.")
    from ticketing.security.api import InvalidEventQuery, counts_by_type, find_events
    from ticketing.security.events import EventType

    event_type = request.args.get("type", "")
    args = {"type": event_type, "limit": "50"}
    if request.args.get("cursor"):
        args["cursor"] = request.args["cursor"]
    try:
        events, next_cursor = find_events(args)
    except InvalidEventQuery as exc:
        raise ApiError(
            400, "invalid_query", "these filters are not valid: " + _messages(exc.problems)
        ) from None
    now = utcnow()
    return render_template(
        "console/security.html",
        actor=actor,
        events=events,
        event_type=event_type,
        types=[t.value for t in EventType],
        day=counts_by_type(now - timedelta(days=1)),
        week=counts_by_type(now - timedelta(days=7)),
        now=now,
        next_url=(
            url_for("console.security")
            + "?"
            + urlencode({**({"type": event_type} if event_type else {}), "cursor": next_cursor})
            if next_cursor
            else None
        ),
    )


@bp.route("/<path:anything>", methods=["GET", "POST"])
def not_found(anything):
    abort(404, "There is no such page in the console.")


# ------------------------------------------------------------------ live updates

_TOKEN = re.compile(r'name="csrf_token" value="[^"]*"')


def _render_regions(
    regions: Mapping[str, str], context: Mapping[str, Any]
) -> tuple[dict[str, tuple[str, str]], str]:
    """Each region's HTML and version (a digest of it), and the page's version."""
    rendered = {}
    for name, template in regions.items():
        html = render_template(template, **context)
        # Form tokens are signed afresh on every render: they are no change.
        stable = _TOKEN.sub("", html)
        rendered[name] = (html, hashlib.sha256(stable.encode()).hexdigest()[:16])
    page = hashlib.sha256("".join(rendered[n][1] for n in sorted(rendered)).encode())
    return rendered, page.hexdigest()[:16]


def _live(regions: Mapping[str, str], context: Mapping[str, Any]):
    """The regions that changed, as JSON, or 204 when none did (``v``: the page's version)."""
    rendered, version = _render_regions(regions, context)
    if request.args.get("v") == version:
        return "", 204
    return jsonify(
        version=version,
        regions={name: {"html": html, "version": v} for name, (html, v) in rendered.items()},
    )
