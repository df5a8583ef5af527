"""Status page: incidents, updates, alerts, maintenance, audit, subscribers, partner links.

Revision ID: 0009_incidents
Revises: 0008_ticket_search
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_incidents"
down_revision = "0008_ticket_search"
branch_labels = None
depends_on = None

INCIDENT_STATUSES = "'investigating', 'identified', 'monitoring', 'resolved'"


def upgrade():
    op.create_table(
        "status_incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("impact", sa.String(length=20), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            f"status IN ({INCIDENT_STATUSES})", name=op.f("ck_status_incidents_status")
        ),
        sa.CheckConstraint(
            "impact IN ('none', 'minor', 'major', 'critical')",
            name=op.f("ck_status_incidents_impact"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_incidents")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_status_incidents_resolved_at", "status_incidents", ["resolved_at"])
    op.create_table(
        "status_incident_updates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            f"status IN ({INCIDENT_STATUSES})", name=op.f("ck_status_incident_updates_status")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["status_incidents.id"],
            name=op.f("fk_status_incident_updates_incident_id_status_incidents"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_status_incident_updates_staff_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_incident_updates")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_status_incident_updates_incident_id_id",
        "status_incident_updates",
        ["incident_id", "id"],
    )
    op.create_table(
        "status_alerts",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("component", sa.String(length=40), nullable=False),
        sa.Column("alertname", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("starts_at", sa.String(length=64), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["status_incidents.id"],
            name=op.f("fk_status_alerts_incident_id_status_incidents"),
        ),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_status_alerts")),
    )
    op.create_index("ix_status_alerts_component_status", "status_alerts", ["component", "status"])
    op.create_table(
        "status_maintenances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("silence_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('scheduled', 'in_progress', 'completed', 'cancelled')",
            name=op.f("ck_status_maintenances_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_maintenances")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_status_maintenances_ends_at", "status_maintenances", ["ends_at"])
    op.create_table(
        "status_audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("maintenance_id", sa.Integer(), nullable=True),
        sa.Column("actor_kind", sa.String(length=20), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "actor_kind IN ('staff', 'system', 'alertmanager')",
            name=op.f("ck_status_audit_actor_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["status_incidents.id"],
            name=op.f("fk_status_audit_incident_id_status_incidents"),
        ),
        sa.ForeignKeyConstraint(
            ["maintenance_id"],
            ["status_maintenances.id"],
            name=op.f("fk_status_audit_maintenance_id_status_maintenances"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_audit")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_status_audit_incident_id_id", "status_audit", ["incident_id", "id"])
    op.create_index("ix_status_audit_maintenance_id_id", "status_audit", ["maintenance_id", "id"])
    op.create_table(
        "status_subscribers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("asked_at", sa.DateTime(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_subscribers")),
        sa.UniqueConstraint("email", name=op.f("uq_status_subscribers_email")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "status_partner_links",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"],
            ["partners.id"],
            name=op.f("fk_status_partner_links_partner_id_partners"),
        ),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_status_partner_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_status_partner_links_token_hash")),
    )


def downgrade():
    op.drop_table("status_partner_links")
    op.drop_table("status_subscribers")
    op.drop_index("ix_status_audit_maintenance_id_id", table_name="status_audit")
    op.drop_index("ix_status_audit_incident_id_id", table_name="status_audit")
    op.drop_table("status_audit")
    op.drop_index("ix_status_maintenances_ends_at", table_name="status_maintenances")
    op.drop_table("status_maintenances")
    op.drop_index("ix_status_alerts_component_status", table_name="status_alerts")
    op.drop_table("status_alerts")
    op.drop_index("ix_status_incident_updates_incident_id_id", table_name="status_incident_updates")
    op.drop_table("status_incident_updates")
    op.drop_index("ix_status_incidents_resolved_at", table_name="status_incidents")
    op.drop_table("status_incidents")
