"""The search page (``/console/search?q=...``): tickets found by words, best match first.

The search box in every page's top bar sends here. The same search as the staff
API's (``ticketing.desk.search``): internal notes included, each result with
where it matched. Matched words are wrapped in ``<mark>`` by the template, around
pieces of text it escapes like any other (``Highlight.segments``): nothing
stored is ever taken as markup.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import marshmallow as ma
from flask import render_template, request, url_for
from flask.typing import ResponseReturnValue

from ticketing.api.schemas import SearchQuerySchema
from ticketing.console.blueprint import bp, problems_text, settings, signed_in_staff
from ticketing.console.queue_page import staff_and_partners
from ticketing.desk import search
from ticketing.desk.queue import sla_state
from ticketing.models import Ticket, utcnow


@bp.get("/search")
def search_results() -> ResponseReturnValue:
    actor = signed_in_staff()
    q = (request.args.get("q") or "").strip()
    cursor = request.args.get("cursor") or None
    context: dict[str, object] = {"actor": actor, "search_query": q, "hits": [], "problem": None}
    status = 200
    if q:
        raw = {"q": q, **({"cursor": cursor} if cursor else {})}
        try:
            query = SearchQuerySchema().load(raw)
        except ma.ValidationError as exc:
            context["problem"] = "This search cannot run: " + problems_text(exc.messages)
            status = 400
        else:
            page = search.search_page(
                actor, query["q"], cursor=query.get("cursor"), limit=settings().page_size
            )
            staff, partners = staff_and_partners()
            now = utcnow()
            due_soon = timedelta(seconds=settings().due_soon)

            def sla(ticket: Ticket) -> str:
                return sla_state(ticket, now, due_soon)

            context.update(
                hits=page.items,
                now=now,
                sla=sla,
                staff_names={s.id: s.name for s in staff},
                partner_names={p.id: p.name for p in partners},
                next_url=url_for("console.search_results")
                + "?"
                + urlencode({"q": q, "cursor": page.next_cursor})
                if page.next_cursor
                else None,
            )
    return render_template("console/search.html", **context), status
