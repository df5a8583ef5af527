"""Checks on the ticket service's answers and tables: the stable error shape, rows written."""

from __future__ import annotations

from ticketing.db import db

#: The ticket service's own tables (security events and outbox rows are the
#: extensions' business: a refused request may well record one).
CORE_TABLES = (
    "partners",
    "staff",
    "api_keys",
    "tickets",
    "messages",
    "attachments",
    "ticket_audit",
    "idempotency_keys",
)


def row_counts(app) -> dict[str, int]:
    """Rows in each core table, to show that a refused request wrote nothing."""
    with app.app_context():
        counts = {}
        for name in CORE_TABLES:
            table = db.metadata.tables[name]
            counts[name] = db.session.execute(
                db.select(db.func.count()).select_from(table)
            ).scalar_one()
        db.session.rollback()
        return counts


def assert_error(response, status: int, code: str | None = None) -> dict:
    """``response`` is a JSON error of the stable shape; returns its ``error`` object."""
    assert response.status_code == status, (response.status_code, response.get_data(True))
    assert response.mimetype == "application/json", response.get_data(True)
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert isinstance(error["details"], dict)
    if code is not None:
        assert error["code"] == code, error
    return error
