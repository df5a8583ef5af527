"""Every partner watched: the shipped incremental partner query, on both databases.

The ``partner_transactions`` query of exporter/partnerwatch.yml runs through
the exporter's own collector (the class the process uses) against a real
SQLite file and a real PostgreSQL database: every partner gets series, a run
reads only the rows added since the last one, a pending transaction is
counted once when it settles, a restarted exporter and a second exporter
publish the same values, and past the series budget the least recently
active partners are held back, loudly.
"""

from __future__ import annotations

import pytest
from prometheus_client.core import CollectorRegistry
from prometheus_client.metrics_core import Metric
from sqlalchemy import create_engine, insert, text, update

from exporter.collectors.incremental import IncrementalQuery
from exporter.databases import Database
from exporter.schema import DatabaseConfig, QueryConfig
from tests.harness.exporter import shipped_config
from tests.harness.platform_data import platform, transactions, utcnow

PARTNERS = 250


def partner_query(**changes) -> QueryConfig:
    raw = shipped_config()["queries"]["partner_transactions"]
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            raw[section] = {**raw[section], name: value}
        else:
            raw[key] = value
    return QueryConfig.model_validate(raw)


def collector(url: str, **changes) -> IncrementalQuery:
    database = Database("platform", DatabaseConfig(url=url))
    return IncrementalQuery(
        "partner_transactions", partner_query(**changes), database, interval=15, timeout=10,
        staleness=60,
    )  # fmt: skip


def values(families: list[Metric]) -> dict[str, float]:
    """``name{label="value",...}`` -> value, read back through a registry."""

    class Fixed:
        def collect(self):
            return families

    registry = CollectorRegistry()
    registry.register(Fixed())  # type: ignore[arg-type]
    out = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def completed(partner: int) -> str:
    return f'platform_partner_transactions_total{{partner="{partner}",status="completed"}}'


def failed(partner: int) -> str:
    return f'platform_partner_transactions_total{{partner="{partner}",status="failed"}}'


def drawn(partner: int) -> str:
    return f'platform_partner_energy_drawn_units_total{{partner="{partner}"}}'


def add(engine, rows: list[tuple[int, str]], amount: float = 2) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            insert(transactions),
            [
                {"partner_id": p, "status": s, "amount_units": amount, "created_at": now}
                for p, s in rows
            ],
        )


@pytest.fixture
def engine(db_url):
    engine = create_engine(db_url)
    platform.create_all(engine)
    yield engine
    engine.dispose()


def skewed() -> list[tuple[int, str]]:
    """Partner n has about 2000/n transactions (a few large, most small); every 10th fails."""
    rows = []
    for partner in range(1, PARTNERS + 1):
        for i in range(max(1, 2000 // partner)):
            rows.append((partner, "failed" if i % 10 == 9 else "completed"))
    return rows


def test_every_partner_gets_series_and_runs_read_only_new_rows(engine, db_url):
    rows = skewed()
    add(engine, rows)
    query = collector(db_url)
    got = values(query.collect())
    partners = {int(k.split('"')[1]) for k in got if k.startswith("platform_partner_")}
    assert partners == set(range(1, PARTNERS + 1))  # all of them, not a top-N
    # A small partner that never failed still has its failed series, at 0.
    assert got[completed(PARTNERS)] == 2000 // PARTNERS and got[failed(PARTNERS)] == 0
    assert got[completed(1)] + got[failed(1)] == 2000 and got[failed(1)] == 200
    assert got[drawn(1)] == 1800 * 2
    assert got['exporter_query_series{collector="query:partner_transactions"}'] == 3 * PARTNERS
    assert got['exporter_query_series_dropped{collector="query:partner_transactions"}'] == 0
    high = query.watermark
    assert high == len(rows)

    # The next run reads the rows after the watermark only: a small partner
    # failing shows at once, and nothing else moves.
    add(engine, [(PARTNERS, "failed")] * 3)
    again = values(query.collect())
    assert again[failed(PARTNERS)] == 3 and again[completed(PARTNERS)] == 2000 // PARTNERS
    assert {k: v for k, v in again.items() if k != failed(PARTNERS)} == {
        k: v for k, v in got.items() if k != failed(PARTNERS)
    }
    assert query.watermark == high + 3


def test_a_pending_transaction_is_counted_once_when_it_settles(engine, db_url):
    add(engine, [(7, "completed"), (7, "pending"), (8, "pending")])
    query = collector(db_url)
    first = values(query.collect())
    assert first[completed(7)] == 1 and first[drawn(7)] == 2
    assert failed(8) not in first  # nothing settled yet for partner 8
    assert query.status()["pending_rows"] == 2

    with engine.begin() as conn:
        conn.execute(
            update(transactions)
            .where(transactions.c.partner_id == 7, transactions.c.status == "pending")
            .values(status="completed")
        )
        conn.execute(
            update(transactions)
            .where(transactions.c.partner_id == 8)
            .values(status="failed", amount_units=9)
        )
    second = values(query.collect())
    assert second[completed(7)] == 2 and second[drawn(7)] == 4
    assert second[failed(8)] == 1 and second[drawn(8)] == 0
    assert query.status()["pending_rows"] == 0
    # Counted once: later runs do not count them again.
    assert values(query.collect()) == second


def test_restart_and_a_second_exporter_publish_the_same_counters(engine, db_url):
    add(engine, skewed())
    add(engine, [(3, "pending")])
    running = collector(db_url)
    running.collect()
    with engine.begin() as conn:
        conn.execute(
            update(transactions).where(transactions.c.status == "pending").values(status="failed")
        )
    add(engine, [(5, "failed"), (9, "completed")])
    before = values(running.collect())

    # A restart (a new process: nothing remembered) reads the history in
    # batches; half-read history is not published, then the same values are.
    restarted = collector(db_url, incremental__batch=1000)
    runs = 0
    while not restarted.caught_up:
        published = restarted.collect()
        runs += 1
        if not restarted.caught_up:
            assert published == []
    assert runs >= 1
    assert values(restarted.families(restarted.totals)) == before
    # A second exporter (HA) reading the same database: the same series and values.
    assert values(collector(db_url).collect()) == before


def test_catching_up_is_bounded_per_run(engine, db_url, monkeypatch):
    add(engine, skewed())
    query = collector(db_url, incremental__batch=100)
    # No time left for catching up: one batch per run.
    monkeypatch.setattr("exporter.collectors.incremental.CATCH_UP_SHARE", 0.0)
    assert query.collect() == []
    assert query.watermark == 100 and not query.caught_up


def test_past_the_budget_the_least_recently_active_partners_are_held_back(engine, db_url):
    add(engine, [(p, "completed") for p in range(1, 101)])
    query = collector(db_url, series_budget={"max_series": 60, "group_by": ["partner"]})
    got = values(query.collect())
    assert got['exporter_query_series{collector="query:partner_transactions"}'] == 60
    assert got['exporter_query_series_limit{collector="query:partner_transactions"}'] == 60
    assert got['exporter_query_series_dropped{collector="query:partner_transactions"}'] == 240
    kept = {int(k.split('"')[1]) for k in got if k.startswith("platform_partner_")}
    assert len(kept) == 20  # whole partners: 3 series each

    # A partner outside the kept set fails: it is the most recently active now,
    # so its series come back (and an older partner makes room).
    quiet = min(set(range(1, 101)) - kept)
    add(engine, [(quiet, "failed")] * 2)
    got = values(query.collect())
    assert got[failed(quiet)] == 2 and got[completed(quiet)] == 1
    assert got['exporter_query_series_dropped{collector="query:partner_transactions"}'] == 240


def test_a_non_integer_key_fails_the_run_with_a_clear_message(engine, db_url):
    add(engine, [(1, "completed")])
    query = collector(db_url, incremental__key="status")
    with pytest.raises(Exception, match="is not an integer"):
        query.collect()


def test_the_query_costs_the_new_rows_only(engine, db_url):
    """The range statement reads by key: the plan searches the primary key's index."""
    add(engine, skewed())
    query = collector(db_url)
    query.collect()
    sql = query._range.sql
    with engine.begin() as conn:
        if db_url.startswith("postgresql"):
            conn.execute(text("ANALYZE transactions"))
            sql = sql.replace("%(after)s", "5000").replace("%(upto)s", "5010").replace("%%", "%")
            plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql)))
            assert "transactions_pkey" in plan, plan
        else:
            sql = sql.replace("?", "5000", 1).replace("?", "5010", 1)
            plan = "\n".join(r[-1] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "SEARCH transactions USING INTEGER PRIMARY KEY" in plan, plan


def test_a_plain_query_keeps_the_partners_whose_values_moved(engine, db_url):
    """The budget is a feature of every SQL metric: a gauge query keeps the groups
    whose values changed most recently."""
    from exporter.collectors.sql_metrics import SqlQuery

    add(engine, [(p, "completed") for p in (1, 2, 3)])
    config = QueryConfig.model_validate(
        {
            "database": "platform",
            "sql": "SELECT partner_id AS partner, COUNT(*) AS n FROM transactions "
            "GROUP BY partner_id",
            "series_budget": {"max_series": 2},
            "metrics": [{"name": "partner_rows", "help": "Rows.", "value": "n",
                         "labels": ["partner"]}],
        }
    )  # fmt: skip
    query = SqlQuery(
        "rows", config, Database("platform", DatabaseConfig(url=db_url)), interval=15,
        timeout=10, staleness=60,
    )  # fmt: skip
    got = values(query.collect())
    assert sorted(k for k in got if k.startswith("partner_rows")) == [
        'partner_rows{partner="1"}',
        'partner_rows{partner="2"}',
    ]
    assert got['exporter_query_series_dropped{collector="query:rows"}'] == 1
    add(engine, [(3, "completed")])
    got = values(query.collect())
    assert 'partner_rows{partner="3"}' in got and got['partner_rows{partner="3"}'] == 2
    assert query.status() == {"series": 2, "series_limit": 2, "series_dropped": 1}
