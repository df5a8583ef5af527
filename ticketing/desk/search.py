"""Full-text search over tickets: titles, descriptions, partners' names and messages.

One implementation for the staff API (``GET /api/v1/staff/tickets/search``),
the partner API (``GET /api/v1/tickets/search``) and the console
(``/console/search``):

    page = search_page(actor, "invoice tx-8f3a-19", cursor=None, limit=25)
    for hit in page.items:      # Hit(ticket, highlights), best first
        hit.highlights          # [Highlight("title", None, False, "Invoice ...", [(0, 7)]), ...]

**What is searched.** Every ticket has a document (its title, its partner's
name and its description) and every message one of its own; staff's internal
notes are kept apart (SQLite: their own column; PostgreSQL: a flag). A
partner's search reads only its own tickets' documents, never an internal
note: a note can neither match nor show up in a snippet. Staff search
everything.

**The query** is the words the user typed (at most :data:`MAX_WORDS`), never
a query language: each word is searched as a quoted phrase of its tokens, so
``tx-8f3a-19`` or ``ops@acme.io`` are found as written, and nothing typed
(quotes, ``AND``, ``NEAR(``, ``:*``, a parenthesis) can be a syntax error. A
ticket matches when every word is somewhere in what the searcher may see of
it (its own document or any of its messages). Words are stemmed (English):
``payments`` finds ``payment``.

**Ranking**: per word, the best document of the ticket (SQLite: FTS5's BM25;
PostgreSQL: ``ts_rank``), summed over the words; a title counts more than the
partner's name, which counts more than a description or a message. Ties: the
newest ticket first. Pages are cut by position in that order (a signed cursor
bound to the words and the searcher, like the lists' cursors): a rank moves as
tickets are written, so a keyset on it would be no steadier.

**Highlights**: for each ticket of a page, its title and partner's name when
they match, and a snippet of its best-matching description or message, each
as plain ``text`` with the ``ranges`` (``[start, end)`` offsets in code points)
of the matched words. The console wraps the ranges in ``<mark>`` after
escaping the text; nothing from the database is ever taken as markup.

**The index** lives in the table ``ticket_search`` (migration
``0008_ticket_search``): on SQLite an FTS5 table (tokenizer ``porter
unicode61``; columns title, partner, body, note) whose rowid is ``ticket id *
2**32 + message id`` (0 for the ticket's own document), so the documents of
one ticket are a rowid range; a partner's query names the columns it may read
(``{title partner body} : ...``), so notes are left out in the index itself; on
PostgreSQL one row per document with its ``tsvector`` (configuration
``english``, weights A title, B partner, C text) under a GIN index.
:func:`index_ticket` and :func:`index_message` are called by
``ticketing.desk.tickets`` where tickets and messages are written, in the same
transaction: a search sees exactly what is committed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import text

from ticketing.api.pagination import fingerprint, service_secret
from ticketing.auth import Actor
from ticketing.db import MAX_ID, db, execute_core
from ticketing.errors import ApiError
from ticketing.models import Message, Ticket

#: The most words a query may have, and the longest query.
MAX_WORDS = 8
MAX_QUERY_LENGTH = 200
#: A message id's room in an SQLite document's rowid (ticket id * 2**32 + message id).
ROWID_SPAN = 2**32
#: What the database marks a matched word with (control characters no stored text
#: holds: the API refuses them in titles, descriptions and messages).
START, STOP = "\x02", "\x03"
#: About how long a snippet of a description or message is, in characters.
SNIPPET_CHARACTERS = 240
#: The salt that derives the search cursor's key from the service's secret.
CURSOR_SALT = "ticketing.search_cursor"

_WORD = re.compile(r"[^\W_]")
#: What may stand between two marked pieces that are one word (``tx-8f3a``, ``ops@acme``).
_JOINER = re.compile(r"[^\w\s]{0,2}")

# BM25 weights of the FTS5 columns: title, partner, body (descriptions, replies), note
# (internal notes).
_BM25 = "bm25(ticket_search, 10.0, 4.0, 1.0, 1.0)"


# ------------------------------------------------------------------ the query


def words(query: str) -> list[str]:
    """The words of a user's query: whitespace-separated, each with a letter or digit.

    Raises ``ValueError`` (with a message for the user) when there is none or
    more than :data:`MAX_WORDS`."""
    if len(query) > MAX_QUERY_LENGTH:
        raise ValueError(f"Longer than {MAX_QUERY_LENGTH} characters.")
    found: list[str] = []
    for chunk in query.split():
        if _WORD.search(chunk) and chunk not in found:
            found.append(chunk)
    if not found:
        raise ValueError("Give at least one word (letters or digits).")
    if len(found) > MAX_WORDS:
        raise ValueError(f"At most {MAX_WORDS} words.")
    return found


def _fts5_phrase(word: str) -> str:
    """``word`` as an FTS5 string: a phrase of its tokens, never an operator."""
    return '"' + word.replace('"', '""') + '"'


def _websearch_phrase(word: str) -> str:
    """``word`` as a quoted phrase for ``websearch_to_tsquery`` (which never fails)."""
    return '"' + word.replace('"', " ") + '"'


def _dialect() -> str:
    name: str = db.session.get_bind().dialect.name
    return name


# ------------------------------------------------------------------ the index


def index_ticket(ticket: Ticket) -> None:
    """Add the new ``ticket``'s document (title, partner's name, description)."""
    params = {
        "ticket_id": ticket.id,
        "partner_id": ticket.partner_id,
        "title": ticket.title,
        "body": ticket.description,
    }
    if _dialect() == "sqlite":
        execute_core(_SQLITE_INDEX_TICKET, {**params, "rowid": ticket.id * ROWID_SPAN})
    else:
        execute_core(PG_INDEX_TICKET, params)


def index_message(message: Message) -> None:
    """Add the new ``message``'s document (internal notes marked as such)."""
    params = {
        "ticket_id": message.ticket_id,
        "message_id": message.id,
        "internal": bool(message.internal),
        "body": message.body,
    }
    if _dialect() == "sqlite":
        # An internal note's text goes in the column ``note``, which partners' searches
        # leave out.
        internal = params["internal"]
        execute_core(
            _SQLITE_INDEX_MESSAGE,
            {
                "rowid": message.ticket_id * ROWID_SPAN + message.id,
                "public": "" if internal else message.body,
                "note": message.body if internal else "",
            },
        )
    else:
        execute_core(PG_INDEX_MESSAGE, params)


_SQLITE_INDEX_TICKET = text(
    "INSERT INTO ticket_search (rowid, title, partner, body, note) "
    "SELECT :rowid, :title, name, :body, '' FROM partners WHERE id = :partner_id"
)
_SQLITE_INDEX_MESSAGE = text(
    "INSERT INTO ticket_search (rowid, title, partner, body, note) "
    "VALUES (:rowid, '', '', :public, :note)"
)
#: The PostgreSQL statements that index a new ticket and a new message (also
#: the throughput benchmark's floor: benchmarks/_bare_app.py).
PG_INDEX_TICKET = text(
    "INSERT INTO ticket_search (ticket_id, message_id, internal, document) "
    "SELECT :ticket_id, NULL, false, "
    "setweight(to_tsvector('english', :title), 'A') "
    "|| setweight(to_tsvector('english', name), 'B') "
    "|| setweight(to_tsvector('english', :body), 'C') "
    "FROM partners WHERE id = :partner_id"
)
PG_INDEX_MESSAGE = text(
    "INSERT INTO ticket_search (ticket_id, message_id, internal, document) "
    "VALUES (:ticket_id, :message_id, :internal, "
    "setweight(to_tsvector('english', :body), 'C'))"
)


# ------------------------------------------------------------------ results


@dataclass
class Highlight:
    """Where a ticket matched: ``field`` (``title``, ``partner``, ``description`` or
    ``message``), the message's id and whether it is an internal note, and the
    ``text`` (whole for a title or name, a snippet otherwise) with the
    ``ranges`` of the matched words (``[start, end)`` in code points)."""

    field: str
    message_id: int | None
    internal: bool
    text: str
    ranges: list[tuple[int, int]]

    def segments(self) -> list[tuple[str, bool]]:
        """The text cut at the ranges: ``(piece, matched)`` pairs, in order."""
        pieces: list[tuple[str, bool]] = []
        at = 0
        for start, end in self.ranges:
            if start > at:
                pieces.append((self.text[at:start], False))
            pieces.append((self.text[start:end], True))
            at = end
        if at < len(self.text):
            pieces.append((self.text[at:], False))
        return pieces


@dataclass
class Hit:
    ticket: Ticket
    highlights: list[Highlight] = field(default_factory=list)


@dataclass
class SearchPage:
    items: list[Hit]
    next_cursor: str | None


def marked(raw: str) -> tuple[str, list[tuple[int, int]]]:
    """Split a database's marked text (:data:`START` ... :data:`STOP`) into the plain
    text and the ranges of the marked pieces. Pieces only punctuation apart are one
    range (PostgreSQL marks ``tx``, ``8f3a`` and ``19`` of ``tx-8f3a-19`` apart)."""
    plain = ""
    ranges: list[tuple[int, int]] = []
    start: int | None = None
    for piece in re.split(f"([{START}{STOP}])", raw):
        if piece == START:
            start = len(plain)
        elif piece == STOP:
            if start is not None and len(plain) > start:
                if ranges and _JOINER.fullmatch(plain[ranges[-1][1] : start]):
                    ranges[-1] = (ranges[-1][0], len(plain))
                else:
                    ranges.append((start, len(plain)))
            start = None
        else:
            plain += piece
    return plain, ranges


def snippet(
    plain: str, ranges: list[tuple[int, int]], width: int = SNIPPET_CHARACTERS
) -> tuple[str, list[tuple[int, int]]]:
    """The part of ``plain`` around its first matched word, at most about ``width``
    characters cut at spaces, ``…`` where it is cut; the ranges moved with it."""
    if len(plain) <= width or not ranges:
        return plain, ranges
    start = max(0, ranges[0][0] - width // 4)
    if start > 0:
        space = plain.find(" ", start, ranges[0][0])
        start = space + 1 if space >= 0 else start
    end = min(len(plain), start + width)
    if end < len(plain):
        space = plain.rfind(" ", max(ranges[0][1], start + 1), end)
        end = space if space >= ranges[0][1] else max(end, ranges[0][1])
    lead = "…" if start > 0 else ""
    shift = len(lead) - start
    kept = [(a + shift, min(b, end) + shift) for a, b in ranges if a < end]
    return lead + plain[start:end] + ("…" if end < len(plain) else ""), kept


def _highlight(
    name: str,
    raw: str | None,
    message_id: int | None = None,
    internal: bool = False,
    cut: bool = False,
) -> Highlight | None:
    if raw is None:
        return None
    plain, ranges = marked(raw)
    if not ranges:
        return None
    if cut:
        plain, ranges = snippet(plain, ranges)
    return Highlight(name, message_id, internal, plain, ranges)


# ------------------------------------------------------------------ cursors


@lru_cache(maxsize=8)
def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(
        secret,
        salt=CURSOR_SALT,
        signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
    )


def _bound_to(actor: Actor, found: Sequence[str]) -> str:
    return fingerprint({"words": list(found), "who": [actor.kind, actor.id]})


def _encode_cursor(offset: int, bound: str) -> str:
    token: str = _serializer(service_secret(current_app)).dumps({"o": offset, "f": bound})
    return token


def _decode_cursor(cursor: str, bound: str) -> int:
    """The position the page starts at; 400 ``invalid_cursor`` for anything but ours."""
    bad = ApiError(400, "invalid_cursor", "the cursor is not valid")
    if not isinstance(cursor, str) or not cursor.isascii() or len(cursor) > 512:
        raise bad
    try:
        payload = _serializer(service_secret(current_app)).loads(cursor)
    except (BadData, ValueError, RecursionError):
        raise bad from None
    if not isinstance(payload, dict) or set(payload) != {"o", "f"}:
        raise bad
    offset = payload["o"]
    if type(offset) is not int or not 1 <= offset <= MAX_ID:
        raise bad
    if payload["f"] != bound:
        raise ApiError(400, "invalid_cursor", "the cursor belongs to another search")
    return offset


# ------------------------------------------------------------------ searching


def search_page(actor: Actor, query: str, cursor: str | None, limit: int) -> SearchPage:
    """One page of the tickets matching ``query`` that ``actor`` may see, best first.

    422 ``validation_error`` when the query has no word or too many (the
    schemas check it before); 400 ``invalid_cursor`` for a cursor of another
    search."""
    try:
        found = words(query)
    except ValueError as exc:
        raise ApiError(
            422,
            "validation_error",
            "the request is not valid",
            details={"fields": {"query": {"q": [str(exc)]}}},
        ) from None
    bound = _bound_to(actor, found)
    offset = _decode_cursor(cursor, bound) if cursor else 0
    partner_id = actor.id if actor.is_partner else None
    if _dialect() == "sqlite":
        ranked = _sqlite_ranked(found, partner_id, limit + 1, offset)
    else:
        ranked = _pg_ranked(found, partner_id, limit + 1, offset)
    next_cursor = None
    if len(ranked) > limit:
        ranked = ranked[:limit]
        next_cursor = _encode_cursor(offset + limit, bound)
    if not ranked:
        return SearchPage([], None)
    loaded = {
        t.id: t
        for t in db.session.execute(db.select(Ticket).where(Ticket.id.in_(ranked))).scalars()
    }
    if _dialect() == "sqlite":
        highlights = _sqlite_highlights(found, ranked, partner_id)
    else:
        highlights = _pg_highlights(found, ranked, internal=partner_id is None)
    hits = [Hit(loaded[i], highlights.get(i, [])) for i in ranked if i in loaded]
    return SearchPage(hits, next_cursor)


def _ranked_sql(ctes: list[str], partner_id: int | None, params: dict[str, Any], best: str) -> str:
    """The ranking query over ``ctes`` (``b0``, ``b1``, ...: one per word, each a
    ticket's score for it): tickets holding every word, best total first, then the
    newest; a partner's own tickets only."""
    joins = "".join(f" JOIN b{n} ON b{n}.ticket_id = b0.ticket_id" for n in range(1, len(ctes)))
    score = " + ".join(f"b{n}.score" for n in range(len(ctes)))
    where = ""
    if partner_id is not None:
        # The partner's ticket ids from the (partner_id, id) index, not the tickets' rows.
        where = " WHERE b0.ticket_id IN (SELECT id FROM tickets WHERE partner_id = :partner_id)"
        params["partner_id"] = partner_id
    return (
        f"WITH {', '.join(ctes)} SELECT b0.ticket_id FROM b0{joins}{where} "
        f"ORDER BY {score}{best}, b0.ticket_id DESC LIMIT :limit OFFSET :offset"
    )


def _fts5_query(phrases: str, partner_id: int | None) -> str:
    """An FTS5 query of ``phrases`` in the columns the searcher may read: staff all of
    them, a partner all but ``note`` (the filter works in the index: no note is even
    read for a partner)."""
    return phrases if partner_id is None else f"{{title partner body}} : ({phrases})"


def _sqlite_ranked(
    found: Sequence[str], partner_id: int | None, limit: int, offset: int
) -> list[int]:
    ctes = []
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    for n, word in enumerate(found):
        params[f"w{n}"] = _fts5_query(_fts5_phrase(word), partner_id)
        # MATERIALIZED: FTS5's bm25() cannot be called from the aggregate over it.
        ctes.append(
            f"d{n} AS MATERIALIZED (SELECT rowid / {ROWID_SPAN} AS ticket_id, {_BM25} AS score "
            f"FROM ticket_search WHERE ticket_search MATCH :w{n}), "
            f"b{n} AS (SELECT ticket_id, min(score) AS score FROM d{n} GROUP BY ticket_id)"
        )
    sql = _ranked_sql(ctes, partner_id, params, best="")  # bm25: lower is better
    return [row[0] for row in execute_core(text(sql), params)]


def _sqlite_highlights(
    found: Sequence[str], ticket_ids: Iterable[int], partner_id: int | None
) -> dict[int, list[Highlight]]:
    """The title, partner and description of each ticket where they match, then its
    best-matching message (internal notes only for staff), in one query over the
    documents of these tickets (their rowids: the tickets' own and their messages')."""
    any_word = _fts5_query(" OR ".join(_fts5_phrase(w) for w in found), partner_id)
    marks = f"'{START}', '{STOP}'"
    ids = [int(i) for i in ticket_ids]
    listed = ", ".join(str(i) for i in ids)
    rows = execute_core(
        text(
            f"SELECT rowid / {ROWID_SPAN}, rowid % {ROWID_SPAN}, {_BM25}, "
            f"highlight(ticket_search, 0, {marks}), highlight(ticket_search, 1, {marks}), "
            f"highlight(ticket_search, 2, {marks}), highlight(ticket_search, 3, {marks}) "
            "FROM ticket_search WHERE ticket_search MATCH :q AND rowid IN ("
            f"SELECT id * {ROWID_SPAN} FROM tickets WHERE id IN ({listed}) UNION ALL "
            f"SELECT ticket_id * {ROWID_SPAN} + id FROM messages WHERE ticket_id IN ({listed}))"
        ),
        {"q": any_word},
    )
    result: dict[int, list[Highlight]] = {i: [] for i in ids}
    best: dict[int, tuple[float, Highlight]] = {}
    for ticket_id, message_id, score, title, partner, body, note in rows:
        if message_id == 0:
            for found_here in (
                _highlight("title", title),
                _highlight("partner", partner),
                _highlight("description", body, cut=True),
            ):
                if found_here is not None:
                    result[ticket_id].append(found_here)
            continue
        found_here = _highlight("message", body, message_id, False, cut=True)
        if found_here is None and partner_id is None:
            found_here = _highlight("message", note, message_id, True, cut=True)
        if found_here is not None and (ticket_id not in best or score < best[ticket_id][0]):
            best[ticket_id] = (score, found_here)
    for ticket_id, (_, found_here) in best.items():
        result[ticket_id].append(found_here)
    return result


def _pg_queries(found: Sequence[str]) -> list[str]:
    """The words PostgreSQL can search for (an English stop word alone is no query)."""
    params = {f"w{n}": _websearch_phrase(w) for n, w in enumerate(found)}
    columns = ", ".join(
        f"numnode(websearch_to_tsquery('english', :w{n}))" for n in range(len(found))
    )
    sizes = db.session.execute(text(f"SELECT {columns}"), params).one()
    return [params[f"w{n}"] for n in range(len(found)) if sizes[n] > 0]


def _pg_ranked(found: Sequence[str], partner_id: int | None, limit: int, offset: int) -> list[int]:
    phrases = _pg_queries(found)
    if not phrases:
        return []
    visible = "" if partner_id is None else " AND NOT s.internal"
    ctes = []
    params: dict[str, Any] = {"limit": limit, "offset": offset}
    for n, phrase in enumerate(phrases):
        params[f"w{n}"] = phrase
        ctes.append(
            f"b{n} AS (SELECT s.ticket_id, max(ts_rank(s.document, q)) AS score "
            f"FROM ticket_search s, websearch_to_tsquery('english', :w{n}) q "
            f"WHERE s.document @@ q{visible} GROUP BY s.ticket_id)"
        )
    sql = _ranked_sql(ctes, partner_id, params, best=" DESC")  # ts_rank: higher is better
    return [row[0] for row in db.session.execute(text(sql), params)]


def _pg_highlights(
    found: Sequence[str], ticket_ids: Iterable[int], internal: bool
) -> dict[int, list[Highlight]]:
    phrases = _pg_queries(found)
    ids = list(ticket_ids)
    result: dict[int, list[Highlight]] = {i: [] for i in ids}
    if not phrases:
        return result
    params: dict[str, Any] = {f"w{n}": p for n, p in enumerate(phrases)}
    params["ids"] = ids
    any_word = " || ".join(f"websearch_to_tsquery('english', :w{n})" for n in range(len(phrases)))
    whole = f"'HighlightAll=true, StartSel={START}, StopSel={STOP}'"
    visible = "" if internal else " AND NOT s.internal"
    # Per ticket: its own document and its best-matching message (DISTINCT ON).
    rows = db.session.execute(
        text(
            f"WITH q AS (SELECT {any_word} AS query), best AS ("
            "SELECT DISTINCT ON (s.ticket_id, s.message_id IS NULL) "
            "s.ticket_id, s.message_id, s.internal FROM ticket_search s, q "
            f"WHERE s.ticket_id = ANY(:ids) AND s.document @@ q.query{visible} "
            "ORDER BY s.ticket_id, s.message_id IS NULL, "
            "ts_rank(s.document, q.query) DESC, s.message_id) "
            "SELECT b.ticket_id, b.message_id, b.internal, "
            "CASE WHEN b.message_id IS NULL THEN "
            f"ts_headline('english', t.title, q.query, {whole}) END, "
            "CASE WHEN b.message_id IS NULL THEN "
            f"ts_headline('english', p.name, q.query, {whole}) END, "
            f"ts_headline('english', coalesce(m.body, t.description), q.query, {whole}) "
            "FROM best b CROSS JOIN q JOIN tickets t ON t.id = b.ticket_id "
            "JOIN partners p ON p.id = t.partner_id "
            "LEFT JOIN messages m ON m.id = b.message_id "
            "ORDER BY b.ticket_id, b.message_id IS NOT NULL"
        ),
        params,
    )
    for ticket_id, message_id, is_internal, title, partner, body in rows:
        if message_id is None:
            candidates = [
                _highlight("title", title),
                _highlight("partner", partner),
                _highlight("description", body, cut=True),
            ]
        else:
            candidates = [_highlight("message", body, message_id, bool(is_internal), cut=True)]
        result[ticket_id].extend(h for h in candidates if h is not None)
    return result
