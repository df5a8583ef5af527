"""Tickets linked to incidents: the link and the SLA pause on tickets, weak matches
for staff, bulk replies, each partner alert's state.

Revision ID: 0010_incident_tickets
Revises: 0009_incidents
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_incident_tickets"
down_revision = "0009_incidents"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ALTER TABLE ... ADD COLUMN on both databases (no table is rebuilt, so
    # the search index's triggers on tickets stay as they are).
    op.add_column("tickets", sa.Column("incident_id", sa.Integer(), nullable=True))
    op.add_column("tickets", sa.Column("sla_paused_at", sa.DateTime(), nullable=True))
    op.add_column(
        "tickets",
        sa.Column("sla_paused_seconds", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("ix_tickets_incident_id", "tickets", ["incident_id"])
    op.add_column(
        "status_incidents",
        sa.Column("resolve_tickets", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    op.add_column("status_incidents", sa.Column("closing_message", sa.Text(), nullable=True))

    op.create_table(
        "status_incident_suggestions",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=400), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_status_incident_suggestions_ticket_id_tickets"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["status_incidents.id"],
            name=op.f("fk_status_incident_suggestions_incident_id_status_incidents"),
        ),
        sa.PrimaryKeyConstraint(
            "ticket_id", "incident_id", name=op.f("pk_status_incident_suggestions")
        ),
    )
    op.create_index(
        "ix_status_incident_suggestions_incident_id",
        "status_incident_suggestions",
        ["incident_id"],
    )
    op.create_table(
        "status_incident_replies",
        sa.Column("update_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["update_id"],
            ["status_incident_updates.id"],
            name=op.f("fk_status_incident_replies_update_id_status_incident_updates"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_status_incident_replies_ticket_id_tickets")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_status_incident_replies_message_id_messages"),
        ),
        sa.PrimaryKeyConstraint("update_id", "ticket_id", name=op.f("pk_status_incident_replies")),
    )
    op.create_table(
        "partner_alerts",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("alertname", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_partner_alerts_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_partner_alerts")),
    )
    op.create_index(
        "ix_partner_alerts_partner_id_status", "partner_alerts", ["partner_id", "status"]
    )


def downgrade():
    op.drop_index("ix_partner_alerts_partner_id_status", table_name="partner_alerts")
    op.drop_table("partner_alerts")
    op.drop_table("status_incident_replies")
    op.drop_index(
        "ix_status_incident_suggestions_incident_id", table_name="status_incident_suggestions"
    )
    op.drop_table("status_incident_suggestions")
    op.drop_index("ix_tickets_incident_id", table_name="tickets")
    # ALTER TABLE ... DROP COLUMN on both databases (SQLite 3.35+): rebuilding tickets
    # in batch mode would trip the foreign keys that point at it.
    for table, column in (
        ("status_incidents", "closing_message"),
        ("status_incidents", "resolve_tickets"),
        ("tickets", "sla_paused_seconds"),
        ("tickets", "sla_paused_at"),
        ("tickets", "incident_id"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
