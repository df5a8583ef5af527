"""Security monitor: security_events (one row per type, actor, IP and day, with a count).

Revision ID: 0002_security_events
Revises: 0001_initial
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_security_events"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=True),
        sa.Column("actor_id", sa.String(length=64), nullable=True),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=True),
        sa.Column("path", sa.String(length=2048), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
        sa.UniqueConstraint("hash", name=op.f("uq_security_events_hash")),
    )
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.create_index("ix_security_events_last_seen", ["last_seen"], unique=False)
        batch_op.create_index(
            "ix_security_events_type_last_seen", ["type", "last_seen"], unique=False
        )
        batch_op.create_index("ix_security_events_client_ip", ["client_ip"], unique=False)


def downgrade():
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.drop_index("ix_security_events_client_ip")
        batch_op.drop_index("ix_security_events_type_last_seen")
        batch_op.drop_index("ix_security_events_last_seen")
    op.drop_table("security_events")
