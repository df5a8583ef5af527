"""Ticket search at 100,000 tickets, paired with the ticket list at 1,000.

    python -m benchmarks.ticket_search

On SQLite (FTS5) and on PostgreSQL (a private cluster; tsvector under a GIN
index), a database is migrated to ``0007``, filled with 100,000 tickets (half
of them the benchmark partner's, the rest spread over 99 other partners, each
with a one-word name) and a message on each (every fifth an internal note),
then upgraded to ``0008_ticket_search``, whose upgrade indexes all of it (its
time is printed). A second database holds 1,000 tickets made the same way.

Texts are drawn from a 2,000-word vocabulary with a few planted words of known
frequency, so each query's number of matches is fixed: a transaction id
(``tx-…``, one ticket), a partner's name (1 %), a word in 1 % of the titles,
a word in 10 % of the descriptions, two words together, a word of internal
notes, and the partner API's search of its own tickets (a word in 10 %).

Each round sends, through the service's own request handling (Flask's test
client: routing, authentication, validation, the query, serialization; no HTTP
server, the same for both sides), every search on the 100,000-ticket database
and, right after each, the partner's ticket list (``GET /api/v1/tickets``, a
page of 25) on the 1,000-ticket one, as the throughput benchmark's list
reference. Latencies are pooled over the rounds; whatever else the machine
does hits both sides of a pair alike.

Targets (per database): a search's p99 at 100,000 tickets at most 3 times the
list's p99 at 1,000 for the selective searches (one ticket to 1 % of them),
and at most 10 times for a word in 10 % of the tickets (10,000 matches ranked).
"""

from __future__ import annotations

import logging
import random
import sys
import time
from dataclasses import dataclass, field

from ._support import ms, percentile, say, table, verdict, workdir

TICKETS = 100_000
SMALL_TICKETS = 1_000
PARTNERS = 100
ROUNDS = 30
#: Selective searches: their p99 at most this many times the list's p99 at 1,000 tickets.
SELECTIVE_RATIO = 3.0
#: A word in 10 % of the tickets.
COMMON_RATIO = 10.0

PARTNER_NAMES = [f"Borealis{n:02d}" if n == 7 else f"Vendor{n:02d}" for n in range(2, PARTNERS + 1)]


@dataclass
class Case:
    name: str
    path: str
    q: str
    staff: bool
    matches: str
    common: bool = False
    times: list[float] = field(default_factory=list)


def cases() -> list[Case]:
    return [
        Case(
            "transaction id",
            "/api/v1/staff/tickets/search",
            f"tx-{50_000:05x}-{50_000 % 97:02d}",
            True,
            "1",
        ),
        Case("partner's name", "/api/v1/staff/tickets/search", "Borealis07", True, "1 %"),
        Case("word in 1 % of titles", "/api/v1/staff/tickets/search", "refund", True, "1 %"),
        Case("two words", "/api/v1/staff/tickets/search", "refund invoice", True, "1 %"),
        Case("internal note word", "/api/v1/staff/tickets/search", "escalation", True, "1 %"),
        Case("word in 10 %", "/api/v1/staff/tickets/search", "invoice", True, "10 %", common=True),
        Case(
            "partner: word in 10 %", "/api/v1/tickets/search", "invoice", False, "10 %", common=True
        ),
    ]


def _texts(i: int, rng: random.Random, vocabulary: list[str]) -> tuple[str, str, str]:
    words = rng.choices(vocabulary, k=30)
    title = " ".join(rng.choices(vocabulary, k=5)) + (" refund" if i % 100 == 0 else "")
    description = " ".join(words) + f" Transaction tx-{i:05x}-{i % 97:02d}."
    if i % 10 == 0:
        description += " The invoice is wrong."
    message = " ".join(rng.choices(vocabulary, k=15))
    if i % 5 == 0 and i % 100 == 5:
        message += " escalation"
    return title, description, message


def prepare(url: str, tickets: int) -> tuple[dict[str, str], float]:
    """Migrate to 0007, store ``tickets`` tickets and their messages, upgrade to
    0008 (which indexes them); the keys and the upgrade's seconds."""
    from flask_migrate import upgrade
    from sqlalchemy import insert

    from ticketing import create_app
    from ticketing.auth import issue_key
    from ticketing.db import db
    from ticketing.desk.choices import CATEGORIES, PRIORITIES, STATUSES
    from ticketing.models import Message, Partner, Staff, Ticket, utcnow

    logging.disable(logging.WARNING)
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": url,
            "TICKETING": {"outbox": {"worker": False}, "live": {"enabled": False}},
        }
    )
    rng = random.Random(42)
    vocabulary = [f"w{rng.randrange(10**6):x}" for _ in range(2000)]
    with app.app_context():
        upgrade(revision="0007_ids_never_reused")
        partner = Partner(name="Benchmark Energy")
        db.session.add(partner)
        staff = Staff(name="Bench Agent", email="bench@support.example", role="agent")
        db.session.add(staff)
        db.session.flush()
        others = [Partner(name=name) for name in PARTNER_NAMES]
        db.session.add_all(others)
        db.session.flush()
        _, partner_key = issue_key(partner=partner, name="benchmark")
        _, staff_key = issue_key(staff=staff, name="benchmark")
        now = utcnow()
        batch = 5000
        for start in range(1, tickets + 1, batch):
            rows, messages = [], []
            for i in range(start, min(start + batch, tickets + 1)):
                title, description, message = _texts(i, rng, vocabulary)
                owner = partner.id if i % 2 == 0 else others[i % len(others)].id
                # Borealis07 files 1 % of the tickets.
                if i % 100 == 1:
                    owner = others[5].id
                rows.append(
                    {
                        "id": i,
                        "partner_id": owner,
                        "title": title,
                        "description": description,
                        "category": CATEGORIES[i % len(CATEGORIES)],
                        "status": STATUSES[i % len(STATUSES)],
                        "priority": PRIORITIES[i % len(PRIORITIES)],
                        "created_at": now,
                        "updated_at": now,
                        "needs_triage": False,
                    }
                )
                messages.append(
                    {
                        "ticket_id": i,
                        "sender_type": "staff",
                        "sender_id": staff.id,
                        "body": message,
                        "internal": i % 5 == 0,
                        "created_at": now,
                    }
                )
            db.session.execute(insert(Ticket.__table__), rows)
            db.session.execute(insert(Message.__table__), messages)
        db.session.commit()
        started = time.perf_counter()
        upgrade()
        indexed = time.perf_counter() - started
        if db.engine.dialect.name == "postgresql":
            db.session.execute(db.text("ANALYZE"))
            db.session.commit()
        db.engine.dispose()
    return {"partner": partner_key, "staff": staff_key}, indexed


def run(name: str, url: str, small_url: str) -> list[str]:
    from ticketing import create_app

    started = time.monotonic()
    keys, indexed = prepare(url, TICKETS)
    small_keys, _ = prepare(small_url, SMALL_TICKETS)
    say(
        f"[{name}] {TICKETS:,} tickets and messages stored in {time.monotonic() - started:.0f} s; "
        f"migration 0008 indexed them in {indexed:.1f} s"
    )

    def app_for(database: str):
        return create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": database,
                "TICKETING": {
                    "outbox": {"worker": False},
                    "live": {"enabled": False},
                    "ratelimits": {"enabled": False},
                    "api": {"default_page_size": 25},
                },
            }
        )

    big, small = app_for(url).test_client(), app_for(small_url).test_client()
    staff_headers = {"X-API-Key": keys["staff"]}
    partner_headers = {"X-API-Key": keys["partner"]}
    list_headers = {"X-API-Key": small_keys["partner"]}
    all_cases = cases()
    listing: list[float] = []
    counts: dict[str, int] = {}

    def timed(client, path, headers, **params) -> float:
        begin = time.perf_counter()
        response = client.get(path, headers=headers, query_string=params)
        took = time.perf_counter() - begin
        if response.status_code != 200:
            raise SystemExit(f"{path} {params}: {response.status_code} {response.text[:300]}")
        return took

    # One warm-up pass (connections, caches), then the rounds.
    for case in all_cases:
        headers = staff_headers if case.staff else partner_headers
        response = big.get(case.path, headers=headers, query_string={"q": case.q, "limit": 100})
        counts[case.name] = len(response.json["items"])
        timed(small, "/api/v1/tickets", list_headers)
    for n in range(ROUNDS):
        order = all_cases if n % 2 == 0 else list(reversed(all_cases))
        for case in order:
            headers = staff_headers if case.staff else partner_headers
            case.times.append(timed(big, case.path, headers, q=case.q))
            listing.append(timed(small, "/api/v1/tickets", list_headers))

    list_p99 = percentile(listing, 99)
    rows = [
        [
            "list tickets, 1k tickets (reference)",
            "",
            "",
            ms(percentile(listing, 50)),
            ms(list_p99),
            "1.00",
        ]
    ]
    lines = []
    for case in all_cases:
        p99 = percentile(case.times, 99)
        rows.append(
            [
                f"search: {case.name} ({case.q})",
                case.matches,
                f"{counts[case.name]}{'+' if counts[case.name] == 100 else ''}",
                ms(percentile(case.times, 50)),
                ms(p99),
                f"{p99 / list_p99:.2f}",
            ]
        )
        limit = COMMON_RATIO if case.common else SELECTIVE_RATIO
        lines.append(
            verdict(
                f"{name}: search p99 ({case.name}) at {TICKETS // 1000}k tickets "
                f"<= {limit:g}x list p99 at {SMALL_TICKETS // 1000}k",
                p99 <= limit * list_p99,
                f"{p99 / list_p99:.2f}x: {ms(p99)} ms vs {ms(list_p99)} ms",
            )
        )
    say(f"[{name}] {ROUNDS} rounds; latency in ms through the service's request handling")
    say(
        table(
            ["case", "tickets matching", "first page (<=100)", "p50", "p99", "p99 / list p99"],
            rows,
        )
    )
    say(f"  migration 0008 on {TICKETS:,} tickets and {TICKETS:,} messages: {indexed:.1f} s")
    return lines


def main(argv: list[str]) -> int:
    from tests.harness import start_postgres

    if argv:
        say("usage: python -m benchmarks.ticket_search")
        return 2
    verdicts: list[str] = []
    with workdir("ticket-search-bench") as tmp:
        verdicts += run(
            "SQLite",
            f"sqlite:///{tmp / 'search.db'}",
            f"sqlite:///{tmp / 'search-small.db'}",
        )
        postgres = start_postgres()
        try:
            postgres.execute("CREATE DATABASE search")
            postgres.execute("CREATE DATABASE search_small")
            verdicts += run("PostgreSQL", postgres.url("search"), postgres.url("search_small"))
        finally:
            postgres.cleanup()
    say()
    for line in verdicts:
        say(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
