"""The console's blueprint (``console``, under ``/console``) and what its pages share.

The routes are in the modules named for what they do (each adds its routes to
``bp`` when imported; :func:`ticketing.console.init_app` imports them all):

- ``guard.py``: who may see a page (sign-in, CSRF), headers, error pages;
- ``login.py``: signing in and out;
- ``queue_page.py``: the queue; ``ticket_page.py``: a ticket and its files;
- ``actions.py``: the ticket's forms (reply, assign, status, triage);
- ``security_page.py``: security events (admins);
- ``sessions_page.py``: the staff member's console sessions, ending one;
- ``incidents_page.py``: the status page's incidents (list, open, publish, update, resolve);
- ``maintenance_page.py``: scheduled maintenance (plan, finish early, call off);
- ``live.py``: the JSON the open pages poll; ``regions.py`` renders their regions.

Every change goes through the domain functions the staff API calls
(``tickets.assign``, ``tickets.change_status``, ``tickets.post_message``,
``tickets.set_priority``/``set_category``) after the API's own schemas
validated the input, and commits with ``tickets.commit()``. A refused change
(an invalid transition, an agent assigning someone else, a closed ticket)
re-renders the page with the reason, the typed text kept, and the refusal's
4xx status. Pages are HTML; ``/console/live/...`` answer JSON for the poller.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, abort, current_app

from ticketing.auth import Actor, current_actor
from ticketing.console.settings import ConsoleSettings
from ticketing.security.rate_limits import ACTIONS_ATTR

bp = Blueprint(
    "console", __name__, url_prefix="/console", template_folder="templates", static_folder="static"
)

#: Endpoints that answer without a signed-in session.
PUBLIC = frozenset({"console.login", "console.static", "console.not_found"})
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def settings() -> ConsoleSettings:
    settings: ConsoleSettings = current_app.extensions["console"]
    return settings


def signed_in_staff() -> Actor:
    """The signed-in staff member (the guard lets a request through only with one)."""
    actor = current_actor()
    if actor is None:  # pragma: no cover - the guard answered already
        abort(401)
    return actor


def count_like_the_api(app: Flask) -> None:
    """Console views count against ``api_call`` (per key) and ``login`` (failed key checks
    per IP) like API routes (see ``ticketing.security.rate_limits``)."""
    for endpoint, view in app.view_functions.items():
        if endpoint.startswith("console.") and endpoint != "console.static":
            marks = set(getattr(view, ACTIONS_ATTR, ())) | {"api_call", "login"}
            setattr(view, ACTIONS_ATTR, frozenset(marks))


def problems_text(messages: Any) -> str:
    """Validation messages (nested dicts and lists of them) as one line for a page."""
    if isinstance(messages, dict):
        return "; ".join(f"{name}: {problems_text(value)}" for name, value in messages.items())
    if isinstance(messages, list):
        return " ".join(problems_text(m) for m in messages)
    return str(messages)


# ------------------------------------------------------------------ templates


#: How the console shows a point in time, on every page: UTC, as the tickets keep it, labelled.
#: (``console.js`` writes the live status's times the same way.)
TIME_FORMAT = "%Y-%m-%d %H:%M UTC"


@bp.app_template_filter("when")
def _when(moment: datetime | None) -> str:
    return moment.strftime(TIME_FORMAT) if moment else "—"


@bp.app_template_filter("ago")
def _ago(moment: datetime | None, now: datetime) -> str:
    """The same as ``when``: the console shows every moment in one format (``now`` is
    accepted for the templates that pass it); a due time's distance is ``duration``."""
    return _when(moment)


@bp.app_template_filter("duration")
def _duration(seconds: float) -> str:
    """``25 min``, ``3 h 5 min``, ``4 d 2 h``, ``under a minute``: a span of time."""
    size = int(abs(seconds))
    if size < 60:
        return "under a minute"
    days, rest = divmod(size, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


@bp.context_processor
def _console_settings() -> dict[str, Any]:
    return {
        "config_poll": settings().poll_interval,
        "stale_after": settings().stale_after,
        "status_enabled": "status" in current_app.extensions,  # the Incidents link
    }
