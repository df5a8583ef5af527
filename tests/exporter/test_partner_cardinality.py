"""Per-partner SQL metrics stay bounded: the shipped queries give at most 50 partners."""

from __future__ import annotations

import yaml
from sqlalchemy import create_engine, insert, text

from tests.harness.exporter import ROOT
from tests.harness.platform_data import platform, transactions, utcnow

QUERIES = yaml.safe_load((ROOT / "exporter" / "partnerwatch.yml").read_text())["queries"]


def test_partner_series_are_the_50_busiest_partners(db_url):
    engine = create_engine(db_url)
    platform.create_all(engine)
    now = utcnow()
    # 60 partners; partner n has n transactions (one failed each), so 11..60 are the busiest.
    rows = [
        {
            "partner_id": n,
            "status": "failed" if i == 0 else "completed",
            "amount_units": 2,
            "created_at": now,
        }
        for n in range(1, 61)
        for i in range(n)
    ]
    with engine.begin() as conn:
        conn.execute(insert(transactions), rows)
        by_status = conn.execute(text(QUERIES["partner_transactions"]["sql"])).all()
        energy = conn.execute(text(QUERIES["partner_energy"]["sql"])).all()
    engine.dispose()
    partners = {int(r.partner) for r in by_status}
    assert partners == set(range(11, 61))
    assert len(by_status) == 100  # 2 series per partner
    assert {(int(r.partner), r.status): r.transactions for r in by_status}[(60, "failed")] == 1
    assert {(int(r.partner), r.status): r.transactions for r in by_status}[(60, "completed")] == 59
    drawn = {int(r.partner): float(r.drawn) for r in energy}
    assert set(drawn) == partners and drawn[60] == 59 * 2
