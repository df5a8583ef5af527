"""Category confidence: ticket_audit.confidence, tickets.category_confidence and needs_triage.

Revision ID: 0005_category_confidence
Revises: 0004_webhooks
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_category_confidence"
down_revision = "0004_webhooks"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("ticket_audit") as batch:
        batch.add_column(sa.Column("confidence", sa.Float(), nullable=True))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("category_confidence", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("needs_triage", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        "ix_tickets_needs_triage",
        "tickets",
        ["id"],
        unique=False,
        postgresql_where=sa.text("needs_triage"),
        sqlite_where=sa.text("needs_triage"),
    )


def downgrade():
    op.drop_index(
        "ix_tickets_needs_triage",
        table_name="tickets",
        postgresql_where=sa.text("needs_triage"),
        sqlite_where=sa.text("needs_triage"),
    )
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("needs_triage")
        batch.drop_column("category_confidence")
    with op.batch_alter_table("ticket_audit") as batch:
        batch.drop_column("confidence")
