"""Ids never reused: SQLite tables with integer ids get AUTOINCREMENT.

Revision ID: 0007_ids_never_reused
Revises: 0006_console_sessions

Without AUTOINCREMENT, SQLite gives a new row the highest id in use plus one,
so deleting the newest row (a partner's webhook endpoint, an API key, ...) lets
the next row take its id: whatever still referred to the old row (a queued
event, a cursor, a log line, an alert) would then reach the new owner. With
AUTOINCREMENT (``sqlite_sequence``) an id is never given out twice.

SQLite cannot add AUTOINCREMENT to a table: each table is recreated in batch
mode (rows, indexes, constraints kept) with foreign key enforcement off for the
time of the copy, as SQLite's documentation prescribes for schema changes (the
copy's inserts start ``sqlite_sequence`` at the table's highest id). PostgreSQL sequences never
give an id twice: nothing to do there.
"""

from alembic import op

revision = "0007_ids_never_reused"
down_revision = "0006_console_sessions"
branch_labels = None
depends_on = None

#: Tables with an integer id (console_sessions has AUTOINCREMENT since 0006), parents first.
TABLES = (
    "partners",
    "staff",
    "api_keys",
    "tickets",
    "messages",
    "attachments",
    "ticket_audit",
    "idempotency_keys",
    "security_events",
    "outbox_messages",
    "webhook_endpoints",
    "webhook_deliveries",
)


def _recreate(autoincrement: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    # PRAGMA foreign_keys is a no-op inside a transaction, and a migration run
    # with the ones before it is inside one: end it (what was done so far is
    # kept, as it would be at the end of the upgrade).
    raw = bind.connection.dbapi_connection
    if raw is not None and raw.in_transaction:
        raw.commit()
    bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        for table in TABLES:
            with op.batch_alter_table(
                table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
            ):
                pass
        problems = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"foreign keys broken by the table copies: {problems[:5]}")
    finally:
        raw = bind.connection.dbapi_connection
        if raw is not None and raw.in_transaction:
            raw.commit()
        bind.exec_driver_sql("PRAGMA foreign_keys=ON")


def upgrade():
    _recreate(autoincrement=True)


def downgrade():
    _recreate(autoincrement=False)
